import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    ALTER TABLE channels
      DROP CONSTRAINT channels_status_check,
      ADD CONSTRAINT channels_status_check CHECK (status IN ('created', 'pairing', 'connecting', 'connected',
        'reconnecting', 'logged_out', 'failed', 'suspended', 'deleted'))`
})
