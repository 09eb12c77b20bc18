import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // creates and deletes are paced per customer with the connection operations
  yield* sql`
    ALTER TABLE channel_operations
      DROP CONSTRAINT channel_operations_operation_check,
      ADD CONSTRAINT channel_operations_operation_check
        CHECK (operation IN ('create', 'delete', 'connect', 'pairing_code', 'restart', 'logout'))`
})
