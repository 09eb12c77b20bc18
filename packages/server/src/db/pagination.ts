import { InvalidRequest } from "@whatisup/domain"
import { Effect } from "effect"

export const defaultPageSize = 20

/** Cursors are opaque to callers: the base64url of the last id of the page. */
export const decodeCursor = (cursor: string | undefined, prefix: string) =>
  Effect.suspend(() => {
    if (cursor === undefined) return Effect.succeed(null)
    const id = Buffer.from(cursor, "base64url").toString("utf8")
    return new RegExp(`^${prefix}_[0-9a-z]{26}$`).test(id)
      ? Effect.succeed(id)
      : Effect.fail(
          new InvalidRequest({
            errors: [{ path: "query.cursor", message: "must be a next_cursor value from a previous page" }]
          })
        )
  })

/** Rows were fetched with `limit + 1`: the extra row only says whether there is a next page. */
export const toPage = <Row extends { readonly id: string }, A>(
  rows: ReadonlyArray<Row>,
  limit: number,
  render: (row: Row) => A
) => {
  const page = rows.slice(0, limit)
  const last = page[page.length - 1]
  return {
    data: page.map(render),
    next_cursor: rows.length > limit && last ? Buffer.from(last.id, "utf8").toString("base64url") : null
  }
}
