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
