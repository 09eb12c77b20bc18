import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Redacted } from "effect"
import * as crypto from "node:crypto"
import { inject } from "vitest"

const withDatabase = (serverUrl: string, name: string) => {
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return url.toString()
}

/**
 * A database of its own on the server of `serverUrl`, dropped when the scope closes. The
 * benchmarks use it outside vitest, so nothing here may ask vitest for anything at import.
 */
export const databaseOn = (serverUrl: string) => {
  const adminClient = PgClient.layer({ url: Redacted.make(serverUrl), maxConnections: 1 })
  return Effect.acquireRelease(
    Effect.gen(function* () {
      const base = new URL(serverUrl).pathname.slice(1) || "whatisup"
      const name = `${base}_t${crypto.randomBytes(6).toString("hex")}`.toLowerCase().slice(0, 60)
      const sql = yield* PgClient.PgClient
      yield* sql`CREATE DATABASE ${sql(name)}`
      return { name, url: withDatabase(serverUrl, name) }
    }).pipe(Effect.provide(adminClient), Effect.orDie),
    ({ name }) =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        yield* sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`
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
