import { Migrator } from "effect/sql"
import foundation from "./migrations/0001_foundation.ts"
import channels from "./migrations/0002_channels.ts"
import nodeLeases from "./migrations/0003_node_leases.ts"
import secretsInPlace from "./migrations/0004_secrets_in_place.ts"

export const migrations = {
  "1_foundation": foundation,
  "2_channels": channels,
  "3_node_leases": nodeLeases,
  "4_secrets_in_place": secretsInPlace
}

export const latestMigrationId = Math.max(...Object.keys(migrations).map((name) => Number.parseInt(name, 10)))

export const runMigrations = Migrator.make({})({
  loader: Migrator.fromRecord(migrations),
  table: "whatisup_migrations"
})
