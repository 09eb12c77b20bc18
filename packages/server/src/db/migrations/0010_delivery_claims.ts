import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // until when a delivery's attempt may be in flight: a redelivery waits for it, so no attempt overlaps another
  yield* sql`ALTER TABLE deliveries ADD COLUMN claimed_until timestamptz`
  // fewer indexes to rewrite on the hot path: a node's own claims are found through the due index
  yield* sql`DROP INDEX deliveries_claimed`
  yield* sql`DROP INDEX deliveries_by_customer`
  yield* sql`CREATE INDEX deliveries_by_customer ON deliveries (customer_id, id DESC)`
})
