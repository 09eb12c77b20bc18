import { Migrator } from "effect/sql"
import foundation from "./migrations/0001_foundation.ts"
import channels from "./migrations/0002_channels.ts"
import nodeLeases from "./migrations/0003_node_leases.ts"
import secretsInPlace from "./migrations/0004_secrets_in_place.ts"
import pacedOperations from "./migrations/0005_paced_operations.ts"
import suspendedChannels from "./migrations/0006_suspended_channels.ts"
import clientRequestIds from "./migrations/0007_client_request_ids.ts"
import pacedChannelChurn from "./migrations/0008_paced_channel_churn.ts"
import webhooks from "./migrations/0009_webhooks.ts"
import deliveryClaims from "./migrations/0010_delivery_claims.ts"
import deliveryClaimsInPlace from "./migrations/0011_delivery_claims_in_place.ts"
import messages from "./migrations/0012_messages.ts"
import eventStreams from "./migrations/0013_event_streams.ts"
import nodePresence from "./migrations/0014_node_presence.ts"

export const migrations = {
  "1_foundation": foundation,
  "2_channels": channels,
  "3_node_leases": nodeLeases,
  "4_secrets_in_place": secretsInPlace,
  "5_paced_operations": pacedOperations,
  "6_suspended_channels": suspendedChannels,
  "7_client_request_ids": clientRequestIds,
  "8_paced_channel_churn": pacedChannelChurn,
  "9_webhooks": webhooks,
  "10_delivery_claims": deliveryClaims,
  "11_delivery_claims_in_place": deliveryClaimsInPlace,
  "12_messages": messages,
  "13_event_streams": eventStreams,
  "14_node_presence": nodePresence
}

export const latestMigrationId = Math.max(...Object.keys(migrations).map((name) => Number.parseInt(name, 10)))

export const runMigrations = Migrator.make({})({
  loader: Migrator.fromRecord(migrations),
  table: "whatisup_migrations"
})
