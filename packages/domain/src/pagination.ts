import { Schema } from "effect"

export const Limit = Schema.NumberFromString.pipe(
  Schema.check(Schema.isInt({ message: "must be a whole number" })),
  Schema.check(Schema.isBetween({ minimum: 1, maximum: 100 }, { message: "must be between 1 and 100" }))
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
