import { Schema, SchemaTransformation } from "effect"

export const Limit = Schema.String.pipe(
  Schema.check(Schema.isPattern(/^[0-9]{1,3}$/, { message: "must be a whole number between 1 and 100" })),
  Schema.decodeTo(
    Schema.Number.pipe(
      Schema.check(
        Schema.isBetween(
          { minimum: 1, maximum: 100 },
          { message: "must be a whole number between 1 and 100" }
        )
      )
    ),
    SchemaTransformation.numberFromString
  )
)

export const Cursor = Schema.String.pipe(
  Schema.check(
    Schema.isPattern(/^[A-Za-z0-9_-]{1,200}$/, {
      message: "must be a next_cursor value from a previous page"
    })
  )
)

export const PageQuery = {
  limit: Schema.optionalKey(Limit),
  cursor: Schema.optionalKey(Cursor)
}

export const Page = <S extends Schema.Top>(item: S) =>
  Schema.Struct({
    data: Schema.Array(item),
    next_cursor: Schema.NullOr(Schema.String)
  })
