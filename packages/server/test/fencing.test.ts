import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Scope } from "effect"
import * as crypto from "node:crypto"
import { Change, ChannelLifecycle } from "../src/channels/lifecycle.ts"
import { sqlFor, testDatabase } from "./support/database.ts"
import { waitUntil } from "./support/waits.ts"
import { newCustomer } from "./support/admin.ts"
import { gatewayEnvironment, startGateway } from "./support/gateway.ts"

describe("lease fencing", () => {
  it.live(
    "a stale owner's writes are refused, and change nothing",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const gateway = yield* startGateway(yield* gatewayEnvironment(database.url))
        const { client } = yield* newCustomer(gateway)
        const { id: channel } = yield* client.channels.create({ headers: {}, payload: {} })
        yield* client.channels.connect({ params: { id: channel }, payload: { method: "qr" } })
        yield* waitUntil(
          "the channel's connection is open",
          Effect.sync(() => gateway.whatsapp.isOpen(channel))
        )
        const sql = yield* sqlFor(database.url)
        const lease = (yield* sql<{ generation: number; owner: string }>`
          SELECT generation::int AS generation, owner FROM channel_leases WHERE channel_id = ${channel}`)[0]!
        expect(lease.owner).toBe(gateway.config.nodeId)

        // another process (alive for the next hour) takes the lease over
        yield* sql`INSERT INTO gateway_nodes (node_id, expires_at) VALUES ('another-node', now() + interval '1 hour')`
        yield* sql`UPDATE channel_leases SET owner = 'another-node', generation = generation + 1 WHERE channel_id = ${channel}`
        const lifecycle = Context.get(gateway.services, ChannelLifecycle)
        const stale = { channelId: channel, generation: lease.generation }
        const refused = yield* lifecycle
          .record(stale, Change.Connected({ phoneNumber: "+15550000001" }))
          .pipe(Effect.flip)
        expect(refused._tag).toBe("LeaseLost")
        const row = (yield* sql<{ status: string; phone_number: string | null }>`
          SELECT status, phone_number FROM channels WHERE id = ${channel}`)[0]!
        expect(row).toEqual({ status: "pairing", phone_number: null })
        const events =
          yield* sql`SELECT 1 FROM events WHERE channel_id = ${channel} AND type = 'channel.connected'`
        expect(events).toHaveLength(0)

        // and the process that lost the lease stops its actor at its next reconcile (every 5 s)
        yield* waitUntil(
          "the process that lost the lease closes the connection",
          Effect.sync(() => !gateway.whatsapp.isOpen(channel)),
          { attempts: 400, everyMillis: 25 }
        )
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "generations only grow: after a release the next lease is a higher generation, so a previous life stays fenced",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const sql = yield* sqlFor(database.url)
        const shared = { WHATISUP_MASTER_KEYS: `k1:${crypto.randomBytes(32).toString("base64")}` }
        const firstScope = yield* Scope.make()
        const first = yield* startGateway(
          yield* gatewayEnvironment(database.url, { ...shared, WHATISUP_NODE_ID: "first" })
        ).pipe(Scope.provide(firstScope))
        const { client } = yield* newCustomer(first)
        const { id: channel } = yield* client.channels.create({ headers: {}, payload: {} })
        yield* client.channels.connect({ params: { id: channel }, payload: { method: "qr" } })
        yield* waitUntil(
          "the first process opens the connection",
          Effect.sync(() => first.whatsapp.isOpen(channel))
        )
        const before = (yield* sql<{ generation: number }>`
          SELECT generation::int AS generation FROM channel_leases WHERE channel_id = ${channel}`)[0]!
          .generation
        yield* Scope.close(firstScope, Exit.void)

        // the same node, restarted: it takes the channel again, under a new generation
        const second = yield* startGateway(
          yield* gatewayEnvironment(database.url, { ...shared, WHATISUP_NODE_ID: "first" })
        )
        const lifecycle = Context.get(second.services, ChannelLifecycle)
        yield* waitUntil(
          "the restarted process opens the connection",
          Effect.sync(() => second.whatsapp.isOpen(channel))
        )
        const after = (yield* sql<{ generation: number; owner: string }>`
          SELECT generation::int AS generation, owner FROM channel_leases WHERE channel_id = ${channel}`)[0]!
        expect(after.owner).toBe("first")
        expect(after.generation).toBeGreaterThan(before)
        const refused = yield* lifecycle
          .record(
            { channelId: channel, generation: before },
            Change.Connected({ phoneNumber: "+15550000002" })
          )
          .pipe(Effect.flip)
        expect(refused._tag).toBe("LeaseLost")
      }).pipe(Effect.scoped),
    60_000
  )
})
