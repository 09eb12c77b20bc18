import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { GatewayConfigService } from "../config/config.ts"
import { startEmbeddedPostgres } from "./embedded.ts"
import { runMigrations } from "./migrations.ts"

/**
 * The database: `DATABASE_URL` when set, else an embedded PostgreSQL in the data dir. Connects
 * eagerly (fail fast) and applies pending migrations before anything else uses it.
 */
export const layerDatabase = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* GatewayConfigService
    const url = Option.isSome(config.databaseUrl)
      ? config.databaseUrl.value
      : yield* startEmbeddedPostgres(config.dataDir)
    return PgClient.layer({
      url,
      maxConnections: 20,
      applicationName: "whatisup",
      connectTimeout: "10 seconds"
    })
  })
)

export const layerMigrated = Layer.effectDiscard(
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`SELECT 1`
    const applied = yield* runMigrations
    if (applied.length > 0) {
      yield* Effect.logInfo("database migrated").pipe(
        Effect.annotateLogs({ migrations: applied.map(([id, name]) => `${id}_${name}`).join(",") })
      )
    }
  })
)
