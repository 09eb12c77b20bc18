import { Effect } from "effect"
import { SqlClient } from "effect/sql"

/**
 * The advisory lock a node holds on a session of its own while it is a member (null: a node that
 * holds none, whose lease only lapses): a node whose session ended (its process died, so the server
 * closed it) has its lease cut short by the others instead of running until it expires.
 */
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE gateway_nodes ADD COLUMN presence integer`
})
