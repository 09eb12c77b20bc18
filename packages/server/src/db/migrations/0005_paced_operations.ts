import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    ALTER TABLE customers
      ADD COLUMN pairing_codes_per_channel_per_hour integer NOT NULL DEFAULT 3,
      ADD COLUMN pairing_codes_per_customer_per_day integer NOT NULL DEFAULT 20`
  // what a customer asked of a channel's WhatsApp connection, counted to pace it; kept one day
  yield* sql`
    CREATE TABLE channel_operations (
      customer_id text NOT NULL,
      channel_id text NOT NULL,
      operation text NOT NULL CHECK (operation IN ('connect', 'pairing_code', 'restart', 'logout')),
      created_at timestamptz NOT NULL DEFAULT now()
    )`
  yield* sql`CREATE INDEX channel_operations_by_channel ON channel_operations (channel_id, operation, created_at)`
  yield* sql`CREATE INDEX channel_operations_by_customer ON channel_operations (customer_id, operation, created_at)`
})
