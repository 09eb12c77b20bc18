import { Schema, SchemaTransformation } from "effect"

export const defaultLimit = 20

export const Limit = Schema.String.pipe(
  Schema.check(Schema.isPattern(/^[0-9]{1,3}$/u, { message: "must be a whole number between 1 and 100" })),
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
    Schema.isPattern(/^[A-Za-z0-9_-]{1,200}$/u, {
      message: "must be a next_cursor value from a previous page"
    })
  )
).annotate({
  description: "Where the page starts: the next_cursor of the previous page; omit it for the first page"
})

/** How /openapi.json shows `limit`: the integer it is (the wire carries it as query text). */
export const limitParameter = {
  type: "integer",
  minimum: 1,
  maximum: 100,
  default: defaultLimit,
  description: `How many items the page holds, 1 to 100 (default ${defaultLimit})`
} as const

export const PageQuery = {
  limit: Schema.optionalKey(Limit),
  cursor: Schema.optionalKey(Cursor)
}

export const Page = <S extends Schema.Top>(item: S) =>
  Schema.Struct({
    data: Schema.Array(item).annotate({ description: "This page's items, newest first" }),
    next_cursor: Schema.NullOr(Schema.String).annotate({
      description: "Pass it as ?cursor= to get the next page; null on the last page",
      examples: [null, "YXVkXzAxbThhamN5cHlzMTlnaGRreGt5bmFodDE3"]
    })
  })
