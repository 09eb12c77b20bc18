import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { newCustomer } from "./support/admin.ts"
import { sqlFor, testDatabase } from "./support/database.ts"
import { gatewayEnvironment, startGateway } from "./support/gateway.ts"
import { staysTrue, waitFor, waitUntil } from "./support/waits.ts"

const leaseTtlSeconds = 2

describe("lease renewals", () => {
  it.live(
    "go on while every connection of the shared pool waits on a lock: the channel stays connected",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const gateway = yield* startGateway(
          yield* gatewayEnvironment(database.url, { WHATISUP_LEASE_TTL: `${leaseTtlSeconds}s` })
        )
        const { client } = yield* newCustomer(gateway, { plan: { max_api_keys: 1000 } })
        const { id: channel } = yield* client.channels.create({ headers: {}, payload: {} })
        yield* client.channels.connect({ params: { id: channel }, payload: { method: "qr" } })
        yield* waitUntil(
          "the channel's connection is open",
          Effect.sync(() => gateway.whatsapp.isOpen(channel))
        )
        yield* gateway.whatsapp.pair(channel, "+15550001111")

        const sql = yield* sqlFor(database.url)
        const expiry = Effect.map(
          sql<{ expires_at: number }>`
            SELECT (extract(epoch FROM expires_at) * 1000)::float8 AS expires_at
            FROM held_channel_leases WHERE channel_id = ${channel}`,
          (rows) => rows[0]?.expires_at ?? 0
        ).pipe(Effect.orDie)

        const slowRequests = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              // every key creation locks its customer: with the customers table locked, each one
              // holds a connection of the gateway's pool (20) and waits
              yield* sql`LOCK TABLE customers IN ACCESS EXCLUSIVE MODE`
              const requests = yield* Effect.forkChild(
                Effect.forEach(
                  Array.from({ length: 30 }),
                  () => Effect.exit(client.apiKeys.create({ headers: {}, payload: {} })),
                  { concurrency: "unbounded" }
                )
              )
              const first = yield* waitFor("the lease is renewed", expiry, (at) => at > 0)
              yield* staysTrue(
                "the channel stays connected for three lease lifetimes",
                Effect.sync(() => gateway.whatsapp.isOpen(channel)),
                { forMillis: leaseTtlSeconds * 3000 }
              )
              expect(yield* expiry, "renewed meanwhile").toBeGreaterThan(first + leaseTtlSeconds * 1000)
              return requests
            })
          )
          .pipe(Effect.orDie)
        yield* Fiber.join(slowRequests)
        expect(gateway.whatsapp.isOpen(channel)).toBe(true)
      }).pipe(Effect.scoped),
    60_000
  )
})
