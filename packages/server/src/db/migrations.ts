import { Migrator } from "effect/sql"
import foundation from "./migrations/0001_foundation.ts"

export const migrations = {
  "1_foundation": foundation
}

export const latestMigrationId = 1

export const runMigrations = Migrator.make({})({
  loader: Migrator.fromRecord(migrations),
  table: "whatisup_migrations"
})
