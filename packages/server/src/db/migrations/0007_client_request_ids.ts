import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // what the client called its request, kept apart from the gateway's own request id
  yield* sql`ALTER TABLE audit_events ADD COLUMN client_request_id text`
})
