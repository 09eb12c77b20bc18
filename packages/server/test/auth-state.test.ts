import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Scope } from "effect"
import * as crypto from "node:crypto"
import { AuthStates } from "../src/channels/loginStore.ts"
import { credsType } from "../src/whatsapp/authState.ts"
import { sqlFor, testDatabase } from "./support/database.ts"
import { adminOf, newCustomer } from "./support/admin.ts"
import { apiClient, waitForStatus } from "./support/api.ts"
import { gatewayEnvironment, startGateway } from "./support/gateway.ts"
import { waitUntil } from "./support/waits.ts"

describe("a channel's stored login", () => {
  it.live(
    "survives a restart of the gateway (no new QR), is encrypted at rest, re-encrypted by a rotation, and wiped by a logout",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const sql = yield* sqlFor(database.url)
        const k1 = `k1:${crypto.randomBytes(32).toString("base64")}`
        const k2 = `k2:${crypto.randomBytes(32).toString("base64")}`
        const firstScope = yield* Scope.make()
        const first = yield* startGateway(
          yield* gatewayEnvironment(database.url, { WHATISUP_MASTER_KEYS: k1, WHATISUP_NODE_ID: "node" })
        ).pipe(Scope.provide(firstScope))
        const { key, client: onFirst } = yield* newCustomer(first, { name: "Remembered" })
        const { id: channel } = yield* onFirst.channels.create({ headers: {}, payload: {} })
        yield* onFirst.channels.connect({ params: { id: channel }, payload: { method: "qr" } })
        yield* waitUntil(
          "the channel's connection is open",
          Effect.sync(() => first.whatsapp.isOpen(channel))
        )
        yield* first.whatsapp.pair(channel, "+15556667777")
        yield* waitForStatus(onFirst, channel, "connected")

        const stored = yield* sql<{ key_type: string; ciphertext: string }>`
          SELECT key_type, ciphertext FROM channel_auth_state WHERE channel_id = ${channel}`
        expect(stored.map((row) => row.key_type)).toEqual([credsType])
        expect(stored[0]!.ciphertext).toMatch(/^v2\.k1\./)
        expect(stored[0]!.ciphertext).not.toContain("15556667777")
        yield* Scope.close(firstScope, Exit.void)

        // a new process with a rotated key ring: the login comes back from Postgres, no QR
        const second = yield* startGateway(
          yield* gatewayEnvironment(database.url, {
            WHATISUP_MASTER_KEYS: `${k1},${k2}`,
            WHATISUP_NODE_ID: "node"
          })
        )
        const onSecond = yield* apiClient(second.api, key)
        yield* waitForStatus(onSecond, channel, "connected")
        const events = yield* onSecond.events.list({ query: { channel_id: channel, type: "channel.qr" } })
        expect(events.data).toHaveLength(1)
        expect(second.whatsapp.connects(channel)).toBe(1)

        const rotated = yield* (yield* adminOf(second)).RotateMasterKey()
        expect(rotated.stores).toContainEqual({ store: "channel_auth_state.ciphertext", rewritten: 1 })
        const after = yield* sql<{
          ciphertext: string
        }>`SELECT ciphertext FROM channel_auth_state WHERE channel_id = ${channel}`
        expect(after[0]!.ciphertext).toMatch(/^v2\.k2\./)

        // the running connection's store, kept to try writing after the logout
        const fence = (yield* sql<{ generation: number }>`
          SELECT generation::int AS generation FROM channel_leases WHERE channel_id = ${channel}`)[0]!
        const store = Context.get(second.services, AuthStates).forChannel({
          channelId: channel,
          generation: fence.generation
        })
        yield* onSecond.channels.logout({ params: { id: channel } })
        const wiped = yield* sql`SELECT 1 FROM channel_auth_state WHERE channel_id = ${channel}`
        expect(wiped).toHaveLength(0)
        const late = yield* store
          .write([{ type: credsType, id: "creds", value: JSON.stringify({ phoneNumber: "+15556667777" }) }])
          .pipe(Effect.flip)
        expect(late._tag).toBe("LeaseLost")
        expect(yield* sql`SELECT 1 FROM channel_auth_state WHERE channel_id = ${channel}`).toHaveLength(0)
      }).pipe(Effect.scoped),
    60_000
  )
})
