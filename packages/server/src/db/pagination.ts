import { defaultLimit } from "@whatisup/domain"
import { Data, Effect } from "effect"
import type { SqlClient, Statement } from "effect/sql"

export const defaultPageSize = defaultLimit

/** A cursor that no page of this list handed out. */
export class InvalidCursor extends Data.TaggedError("InvalidCursor")<{}> {}

export interface PageRequest {
  readonly limit?: number | undefined
  readonly cursor?: string | undefined
}

export interface Page<A> {
  readonly data: Array<A>
  readonly next_cursor: string | null
}

/** Cursors are opaque to callers: the base64url of the last id of the page. */
const decodeCursor = (cursor: string | undefined, prefix: string) =>
  Effect.suspend(() => {
    if (cursor === undefined) return Effect.succeed(null)
    const id = Buffer.from(cursor, "base64url").toString("utf8")
    return new RegExp(`^${prefix}_[0-9a-z]{26}$`).test(id)
      ? Effect.succeed(id)
      : Effect.fail(new InvalidCursor())
  })

/**
 * One page of a list ordered by time-sortable id, newest first. `query` receives the fragment that
 * ends its WHERE clause (`AND id < cursor ORDER BY id DESC LIMIT n + 1`); the extra row only says
 * whether there is a next page.
 */
export const listPage = <Row extends { readonly id: string }, E, R>(
  sql: SqlClient.SqlClient,
  request: PageRequest,
  prefix: string,
  query: (window: Statement.Fragment) => Effect.Effect<ReadonlyArray<Row>, E, R>
): Effect.Effect<Page<Row>, InvalidCursor | E, R> =>
  Effect.gen(function* () {
    const limit = request.limit ?? defaultPageSize
    const after = yield* decodeCursor(request.cursor, prefix)
    const rows = yield* query(
      sql`${after === null ? sql`` : sql`AND id < ${after}`} ORDER BY id DESC LIMIT ${limit + 1}`
    )
    const data = rows.slice(0, limit)
    const last = data[data.length - 1]
    return {
      data,
      next_cursor: rows.length > limit && last ? Buffer.from(last.id, "utf8").toString("base64url") : null
    }
  })
