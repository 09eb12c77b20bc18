import { PgClient, PgConnection } from "@effect/sql-pg"
import { Context, Duration, Effect, Layer, Option, type Redacted, type Scope } from "effect"
import * as Reactivity from "effect/reactivity/Reactivity"
import { SqlClient, type SqlError } from "effect/sql"
import * as crypto from "node:crypto"
import * as path from "node:path"
import { GatewayConfigService } from "../config/config.ts"
import { readOrCreateSecret } from "../config/dataDir.ts"
import { startEmbeddedPostgres } from "./embedded.ts"
import { runMigrations } from "./migrations.ts"
import {
  connectOnce,
  currentRole,
  ensureEmbeddedServingRole,
  grantServingRole,
  servingRoleCanAlterAudit
} from "./roles.ts"

/**
 * Connections of the channel leases' own, apart from the shared pool: renewals must not queue behind
 * slow requests, and a statement stuck on a lock is cancelled by the server before the lease lapses.
 */
export class LeaseDatabase extends Context.Service<LeaseDatabase, PgClient.PgClient>()(
  "whatisup/LeaseDatabase"
) {}

/**
 * Opens a session of the leases' own, outside any pool, with the same limits as their connections: a
 * node holds its presence lock on one for as long as it is a member, and the lock ends with it.
 */
export class LeaseSession extends Context.Service<
  LeaseSession,
  Effect.Effect<PgConnection.PgConnection, SqlError.SqlError, Scope.Scope>
>()("whatisup/LeaseSession") {}

/**
 * How long the server keeps a transaction of the gateway's that waits on its client: the gateway
 * never pauses inside one, so one left open is a process frozen or cut off mid-write, whose row locks
 * (a fenced write's lock on a channel's lease) would otherwise hold back the channel's takeover.
 */
export const idleTransactionTimeoutMillis = (leaseTtl: Duration.Duration) =>
  Math.max(10_000, 2 * Duration.toMillis(leaseTtl))

/** How long one lease statement may take: a fifth of the lease's life. */
export const leaseStatementTimeout = (leaseTtl: Duration.Duration) =>
  Duration.millis(Math.max(100, Math.floor(Duration.toMillis(leaseTtl) / 5)))

/** Connections of the shared pool: requests, the message intake's writers, the dispatcher. */
export const poolConnections = 20

/**
 * Where migrations run: the owner of the tables, when the gateway serves as another role (None: the
 * serving connection migrates too).
 */
export class MigrationDatabase extends Context.Service<
  MigrationDatabase,
  Option.Option<Redacted.Redacted<string>>
>()("whatisup/MigrationDatabase") {}

/**
 * The database: `DATABASE_URL` when set (migrated through `WHATISUP_MIGRATION_DATABASE_URL` when
 * that is set too), else an embedded PostgreSQL in the data dir, migrated by its superuser and
 * served as a role that owns nothing. Connects eagerly (fail fast).
 */
export const layerDatabase = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* GatewayConfigService
    const { url, owner } = Option.isSome(config.databaseUrl)
      ? { url: config.databaseUrl.value, owner: config.migrationDatabaseUrl }
      : yield* Effect.gen(function* () {
          const superuser = yield* startEmbeddedPostgres(config.dataDir, [config.port, config.adminPort])
          const password = readOrCreateSecret(path.join(config.dataDir, "postgres-gateway-password"), () =>
            crypto.randomBytes(24).toString("base64url")
          )
          return {
            url: yield* ensureEmbeddedServingRole(superuser, password),
            owner: Option.some(superuser)
          }
        })
    const timeout = leaseStatementTimeout(config.leaseTtl)
    const leaseSettings = {
      url,
      connectTimeout: timeout,
      startupParameters: {
        statement_timeout: String(Duration.toMillis(timeout)),
        lock_timeout: String(Duration.toMillis(timeout))
      }
    }
    const leases = Layer.effect(
      LeaseDatabase,
      PgClient.make({ ...leaseSettings, maxConnections: 2, applicationName: "whatisup-leases" })
    ).pipe(Layer.provide(Reactivity.layer))
    return Layer.mergeAll(
      PgClient.layer({
        url,
        maxConnections: poolConnections,
        applicationName: "whatisup",
        connectTimeout: "10 seconds",
        startupParameters: {
          idle_in_transaction_session_timeout: String(idleTransactionTimeoutMillis(config.leaseTtl))
        }
      }),
      leases,
      Layer.succeed(
        LeaseSession,
        PgConnection.make({ ...leaseSettings, applicationName: "whatisup-presence" })
      ),
      Layer.succeed(MigrationDatabase, owner)
    )
  })
)

/**
 * Applies pending migrations before anything else uses the database: as the tables' owner when the
 * gateway serves as another role, which is then granted what it needs and no more.
 */
export const layerMigrated = Layer.effectDiscard(
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`SELECT 1`
    const owner = yield* MigrationDatabase
    const applied = Option.isNone(owner)
      ? yield* runMigrations
      : yield* Effect.scoped(
          Effect.gen(function* () {
            const ownerSql = yield* connectOnce(owner.value, "whatisup-migrations")
            const applied = yield* runMigrations.pipe(Effect.provideService(SqlClient.SqlClient, ownerSql))
            const serving = yield* currentRole(sql)
            if (serving !== (yield* currentRole(ownerSql))) yield* grantServingRole(ownerSql, serving)
            return applied
          })
        )
    if (applied.length > 0) {
      yield* Effect.logInfo("database migrated").pipe(
        Effect.annotateLogs({ migrations: applied.map(([id, name]) => `${id}_${name}`).join(",") })
      )
    }
    if (yield* servingRoleCanAlterAudit(sql)) {
      yield* Effect.logWarning(
        "the gateway serves as a role that owns its tables (or a superuser): it could disable the audit log's append-only trigger; serve as a role of its own and migrate through WHATISUP_MIGRATION_DATABASE_URL (see the README)"
      ).pipe(Effect.annotateLogs({ role: yield* currentRole(sql) }))
    }
  })
)
