import { PgClient } from "@effect/sql-pg"
import { Context, Duration, Effect, Layer, Option } from "effect"
import * as Reactivity from "effect/reactivity/Reactivity"
import { SqlClient } from "effect/sql"
import { GatewayConfigService } from "../config/config.ts"
import { startEmbeddedPostgres } from "./embedded.ts"
import { runMigrations } from "./migrations.ts"

/**
 * Connections of the channel leases' own, apart from the shared pool: renewals must not queue behind
 * slow requests, and a statement stuck on a lock is cancelled by the server before the lease lapses.
 */
export class LeaseDatabase extends Context.Service<LeaseDatabase, PgClient.PgClient>()(
  "whatisup/LeaseDatabase"
) {}

/** How long one lease statement may take: a fifth of the lease's life. */
export const leaseStatementTimeout = (leaseTtl: Duration.Duration) =>
  Duration.millis(Math.max(100, Math.floor(Duration.toMillis(leaseTtl) / 5)))

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
    const timeout = leaseStatementTimeout(config.leaseTtl)
    const leases = Layer.effect(
      LeaseDatabase,
      PgClient.make({
        url,
        maxConnections: 2,
        applicationName: "whatisup-leases",
        connectTimeout: timeout,
        startupParameters: {
          statement_timeout: String(Duration.toMillis(timeout)),
          lock_timeout: String(Duration.toMillis(timeout))
        }
      })
    ).pipe(Layer.provide(Reactivity.layer))
    return Layer.merge(
      PgClient.layer({
        url,
        maxConnections: 20,
        applicationName: "whatisup",
        connectTimeout: "10 seconds"
      }),
      leases
    )
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
