import { PgClient } from "@effect/sql-pg"
import { Context, Deferred, Effect, Fiber, Latch, Layer, Redacted } from "effect"
import * as crypto from "node:crypto"
import { inject } from "vitest"

const withDatabase = (serverUrl: string, name: string, login?: { user: string; password: string }) => {
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  if (login !== undefined) {
    url.username = login.user
    url.password = login.password
  }
  return url.toString()
}

/** A database of a test's own: `url` connects as the server's user, who owns the tables. */
export interface TestDatabase {
  readonly name: string
  readonly url: string
  readonly role: string
  /** A login of this database's own that owns nothing: what a gateway serves as, as in production. */
  readonly servingUrl: string
}

/**
 * A database of its own on the server of `serverUrl`, with a serving role of its own, both dropped
 * when the scope closes. The benchmarks use it outside vitest, so nothing here may ask vitest for
 * anything at import.
 */
export const databaseOn = (serverUrl: string) => {
  const adminClient = PgClient.layer({ url: Redacted.make(serverUrl), maxConnections: 1 })
  return Effect.acquireRelease(
    Effect.gen(function* (): Effect.fn.Return<TestDatabase, unknown, PgClient.PgClient> {
      const base = new URL(serverUrl).pathname.slice(1) || "whatisup"
      const name = `${base}_t${crypto.randomBytes(6).toString("hex")}`.toLowerCase().slice(0, 60)
      // named after its database, so whatever drops leftover databases finds it too (.ci/run)
      const role = `${name}_gw`
      const password = crypto.randomBytes(18).toString("hex")
      const sql = yield* PgClient.PgClient
      yield* sql`CREATE DATABASE ${sql(name)}`
      yield* sql`CREATE ROLE ${sql(role)} LOGIN PASSWORD ${sql.literal(`'${password}'`)}`
      return {
        name,
        role,
        url: withDatabase(serverUrl, name),
        servingUrl: withDatabase(serverUrl, name, { user: role, password })
      }
    }).pipe(Effect.provide(adminClient), Effect.orDie),
    ({ name, role }) =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        yield* sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`
        yield* sql`DROP ROLE IF EXISTS ${sql(role)}`
      }).pipe(Effect.provide(adminClient), Effect.ignore)
  )
}

/** A database of this test's own on the test server, dropped when the scope closes. */
export const testDatabase = Effect.suspend(() => databaseOn(inject("testDatabaseUrl")))

export const layerSqlFor = (url: string) => PgClient.layer({ url: Redacted.make(url), maxConnections: 4 })

/** A client on a test database, open until the scope closes. */
export const sqlFor = (url: string) =>
  Effect.map(Layer.build(layerSqlFor(url)), (context) => Context.get(context, PgClient.PgClient)).pipe(
    Effect.orDie
  )

/**
 * Every `table.column` of the public schema that holds `plaintext` in clear, as text or as bytes
 * (a bytea reads as its hex), for proving a secret is kept nowhere in clear.
 */
export const columnsHolding = (sql: PgClient.PgClient, plaintext: string) =>
  Effect.gen(function* () {
    const columns = yield* sql<{ table_name: string; column_name: string }>`
      SELECT table_name, column_name FROM information_schema.columns
      WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea')`
    const holding: Array<string> = []
    for (const { table_name, column_name } of columns) {
      const found = yield* sql<{ n: number }>`
        SELECT count(*)::int AS n FROM ${sql(table_name)}
        WHERE position(${plaintext} in ${sql(column_name)}::text) > 0
           OR position(${Buffer.from(plaintext).toString("hex")} in ${sql(column_name)}::text) > 0`
      if (found[0]!.n > 0) holding.push(`${table_name}.${column_name}`)
    }
    return { searched: columns.length, holding }
  })

/**
 * A table locked from a connection of its own, as a stuck database looks to whoever writes it:
 * the lock is held when this returns, until `release`; `waiting` counts the statements that wait on it.
 */
export const lockTable = (
  sql: PgClient.PgClient,
  table: string,
  mode: "SHARE" | "EXCLUSIVE" | "ACCESS EXCLUSIVE"
) =>
  Effect.gen(function* () {
    const locked = yield* Deferred.make<void>()
    const unlocked = yield* Latch.make(false)
    const holder = yield* Effect.forkScoped(
      sql.withTransaction(
        Effect.gen(function* () {
          yield* sql`LOCK TABLE ${sql(table)} IN ${sql.literal(mode)} MODE`
          yield* Deferred.succeed(locked, undefined)
          yield* unlocked.await
        })
      )
    )
    yield* Deferred.await(locked)
    const waiting = Effect.map(
      sql<{
        n: number
      }>`SELECT count(*)::int AS n FROM pg_locks WHERE relation = ${table}::regclass AND NOT granted`,
      (rows) => rows[0]!.n
    ).pipe(Effect.orDie)
    return { waiting, release: Effect.andThen(unlocked.open, Fiber.join(holder)).pipe(Effect.orDie) }
  })

/** Whether a connection is idle in a transaction, or waiting on a lock, its statement `LIKE` `pattern`. */
const sessionsRunning = (
  sql: PgClient.PgClient,
  pattern: string,
  where: "idle in transaction" | "waiting on a lock"
) =>
  Effect.map(
    where === "idle in transaction"
      ? sql<{ n: number }>`
          SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE state = 'idle in transaction' AND query LIKE ${pattern}`
      : sql<{ n: number }>`
          SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE wait_event_type = 'Lock' AND query LIKE ${pattern}`,
    (rows) => (rows[0]?.n ?? 0) > 0
  ).pipe(Effect.orDie)

/**
 * Whether a transaction left open holds what its last statement (`LIKE` `pattern`) locked: a
 * connection idle in a transaction keeps its locks until it ends.
 */
export const idleInTransaction = (sql: PgClient.PgClient, pattern: string) =>
  sessionsRunning(sql, pattern, "idle in transaction")

/** Whether a statement `LIKE` `pattern` waits on a lock another transaction holds. */
export const waitingOnLock = (sql: PgClient.PgClient, pattern: string) =>
  sessionsRunning(sql, pattern, "waiting on a lock")
