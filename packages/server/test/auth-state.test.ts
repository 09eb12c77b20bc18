import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Scope } from "effect"
import * as crypto from "node:crypto"
import { AuthStates } from "../src/channels/loginStore.ts"
import { credsType } from "../src/whatsapp/authState.ts"
import { sqlFor, testDatabase } from "./support/database.ts"
import { waitUntil } from "./support/waits.ts"
import { adminOf, newCustomer } from "./support/admin.ts"
import { gatewayEnvironment, type RunningGateway, startGateway } from "./support/gateway.ts"
import { request } from "./support/http.ts"

const status = (gateway: RunningGateway, key: string, id: string) =>
  Effect.map(
    request(gateway.api, "GET", `/v1/channels/${id}`, { key }),
    (reply) => reply.body.status as string
  )

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
        const { key } = yield* newCustomer(first, { name: "Remembered" })
        const channel = (yield* request(first.api, "POST", "/v1/channels", { key, body: {} })).body
          .id as string
        yield* request(first.api, "POST", `/v1/channels/${channel}/connect`, { key, body: { method: "qr" } })
        yield* waitUntil(
          "the channel's connection is open",
          Effect.sync(() => first.whatsapp.isOpen(channel))
        )
        yield* first.whatsapp.pair(channel, "+15556667777")
        yield* waitUntil(
          "the paired channel is connected",
          Effect.map(status(first, key, channel), (s) => s === "connected")
        )

        const stored = yield* sql<{ key_type: string; ciphertext: string }>`
          SELECT key_type, ciphertext FROM channel_auth_state WHERE channel_id = ${channel}`
        expect(stored.map((row) => row.key_type)).toEqual([credsType])
        expect(stored[0]!.ciphertext).toMatch(/^v1\.k1\./)
        expect(stored[0]!.ciphertext).not.toContain("15556667777")
        yield* Scope.close(firstScope, Exit.void)

        // a new process with a rotated key ring: the login comes back from Postgres, no QR
        const second = yield* startGateway(
          yield* gatewayEnvironment(database.url, {
            WHATISUP_MASTER_KEYS: `${k1},${k2}`,
            WHATISUP_NODE_ID: "node"
          })
        )
        yield* waitUntil(
          "the restarted gateway logs the channel in again",
          Effect.map(status(second, key, channel), (s) => s === "connected")
        )
        const events = yield* request(second.api, "GET", `/v1/events?channel_id=${channel}&type=channel.qr`, {
          key
        })
        expect(events.body.data).toHaveLength(1)
        expect(second.whatsapp.connects(channel)).toBe(1)

        const rotated = yield* (yield* adminOf(second)).RotateMasterKey()
        expect(rotated.stores).toContainEqual({ store: "channel_auth_state", rewritten: 1 })
        const after = yield* sql<{
          ciphertext: string
        }>`SELECT ciphertext FROM channel_auth_state WHERE channel_id = ${channel}`
        expect(after[0]!.ciphertext).toMatch(/^v1\.k2\./)

        // the running connection's store, kept to try writing after the logout
        const fence = (yield* sql<{ generation: number }>`
          SELECT generation::int AS generation FROM channel_leases WHERE channel_id = ${channel}`)[0]!
        const store = Context.get(second.services, AuthStates).forChannel({
          channelId: channel,
          generation: fence.generation
        })
        yield* request(second.api, "POST", `/v1/channels/${channel}/logout`, { key })
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
