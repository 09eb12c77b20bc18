import { Migrator } from "effect/sql"
import foundation from "./migrations/0001_foundation.ts"
import channels from "./migrations/0002_channels.ts"
import pacedOperations from "./migrations/0003_paced_operations.ts"
import suspendedChannels from "./migrations/0004_suspended_channels.ts"
import clientRequestIds from "./migrations/0005_client_request_ids.ts"

export const migrations = {
  "1_foundation": foundation,
  "2_channels": channels,
  "3_paced_operations": pacedOperations,
  "4_suspended_channels": suspendedChannels,
  "5_client_request_ids": clientRequestIds
}

export const latestMigrationId = Math.max(...Object.keys(migrations).map((name) => Number.parseInt(name, 10)))

export const runMigrations = Migrator.make({})({
  loader: Migrator.fromRecord(migrations),
  table: "whatisup_migrations"
})
