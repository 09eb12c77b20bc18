import { Effect } from "effect"
import { SqlClient } from "effect/sql"

/**
 * One lease per node instead of one per channel: a node renews a single row, and a channel's lease
 * is held while its owner's node lease is. The channel keeps its generation, the fence.
 */
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE gateway_nodes ADD COLUMN expires_at timestamptz NOT NULL DEFAULT now()`
  yield* sql`ALTER TABLE gateway_nodes ALTER COLUMN expires_at DROP DEFAULT`
  yield* sql`ALTER TABLE gateway_nodes DROP COLUMN seen_at`
  yield* sql`ALTER TABLE channel_leases ALTER COLUMN owner DROP NOT NULL`
  yield* sql`ALTER TABLE channel_leases DROP COLUMN expires_at`
  // for operators (and tests): each owned channel's lease with the time it runs out, its node's
  yield* sql`
    CREATE VIEW held_channel_leases AS
    SELECT l.channel_id, l.owner, l.generation, n.expires_at
    FROM channel_leases l JOIN gateway_nodes n ON n.node_id = l.owner`
  // the status gauge counts the channels that exist, however many were deleted before
  yield* sql`CREATE INDEX channels_by_status ON channels (status) WHERE status <> 'deleted'`
})
