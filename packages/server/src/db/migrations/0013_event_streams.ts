import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // the transaction that wrote each event: a stream reads a customer's events in (txid, id) order,
  // only below the oldest transaction still running, so no event can commit behind its cursor later
  yield* sql`ALTER TABLE events ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id()`
  yield* sql`CREATE INDEX events_in_transaction_order ON events (customer_id, txid, id)`
})
