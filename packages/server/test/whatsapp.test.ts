import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as crypto from "node:crypto"
import { sqlFor, testDatabase } from "./support/database.ts"
import { staysTrue, waitFor, waitUntil } from "./support/waits.ts"
import { newCustomer } from "./support/admin.ts"
import { gatewayEnvironment, startGateway } from "./support/gateway.ts"
import { request } from "./support/http.ts"
import { baileysGateway, channelOf, simulator } from "./support/simulator.ts"

describe("WhatsApp through Baileys and the protocol simulator", () => {
  it.live(
    "connect by QR through the API, the phone scans, channel.connected with the number; a restarted gateway logs in again without a QR",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        const database = yield* testDatabase
        const env = {
          WHATISUP_WA_WS_URL: sim.url,
          WHATISUP_MASTER_KEYS: `k1:${crypto.randomBytes(32).toString("base64")}`,
          WHATISUP_NODE_ID: "baileys-node"
        }
        const firstScope = yield* Scope.make()
        const first = yield* startGateway(yield* gatewayEnvironment(database.url, env), {
          whatsapp: "baileys"
        }).pipe(Scope.provide(firstScope))
        const { key } = yield* newCustomer(first, { name: "Real Phone" })
        const channel = (yield* request(first.api, "POST", "/v1/channels", { key, body: { name: "sales" } }))
          .body.id
        yield* request(first.api, "POST", `/v1/channels/${channel}/connect`, { key, body: { method: "qr" } })

        const { qr } = (yield* waitFor(
          "the QR is shown",
          request(first.api, "GET", `/v1/channels/${channel}/qr`, { key }),
          (reply) => reply.status === 200,
          { attempts: 400 }
        )).body
        expect(qr).toMatch(/^https:\/\/wa\.me\/settings\/linked_devices#/)
        const png = yield* Effect.promise(() =>
          fetch(`${first.api}/v1/channels/${channel}/qr`, {
            headers: { authorization: `Bearer ${key}`, accept: "image/png" }
          }).then((r) => r.headers.get("content-type"))
        )
        expect(png).toBe("image/png")

        yield* Effect.promise(() => sim.scan(qr, { phoneNumber: "15551234567" }))
        const connected = yield* waitFor(
          "the scanned channel is connected",
          channelOf(first, key, channel),
          (c) => c.status === "connected",
          { attempts: 400 }
        )
        expect(connected.phone_number).toBe("+15551234567")
        const events = yield* request(first.api, "GET", `/v1/events?channel_id=${channel}`, { key })
        const types = events.body.data.map((e: { type: string }) => e.type).reverse()
        expect(types[0]).toBe("channel.qr")
        expect(types).toContain("channel.connected")
        const restart = events.body.data.find((e: { type: string }) => e.type === "channel.disconnected")
        expect(restart.data.code).toBe(515)

        const sql = yield* sqlFor(database.url)
        const stored = yield* sql<{ key_type: string }>`
          SELECT DISTINCT key_type FROM channel_auth_state WHERE channel_id = ${channel}`
        expect(stored.map((row) => row.key_type)).toContain("creds")
        yield* Scope.close(firstScope, Exit.void)

        // a new process: the login comes back from Postgres, decrypted, and no QR is shown
        const second = yield* startGateway(yield* gatewayEnvironment(database.url, env), {
          whatsapp: "baileys"
        })
        yield* waitUntil(
          "the restarted gateway logs the channel in again",
          Effect.map(channelOf(second, key, channel), (c) => c.status === "connected"),
          { attempts: 400 }
        )
        const qrs = yield* request(second.api, "GET", `/v1/events?channel_id=${channel}&type=channel.qr`, {
          key
        })
        expect(qrs.body.data).toHaveLength(1)
        expect(sim.connectionsOf("15551234567").length).toBe(1)

        // the phone unlinks the device: logged_out, the login wiped, no reconnect
        expect(sim.inject("15551234567", { kind: "stream-error", code: 401 })).toBe(1)
        yield* waitUntil(
          "the unlinked channel is logged_out",
          Effect.map(channelOf(second, key, channel), (c) => c.status === "logged_out"),
          { attempts: 400 }
        )
        expect(yield* sql`SELECT 1 FROM channel_auth_state WHERE channel_id = ${channel}`).toHaveLength(0)
        const closed = Effect.sync(() => sim.connectionsOf("15551234567").length === 0)
        yield* waitUntil("the unlinked connection is closed", closed)
        yield* staysTrue("no reconnect after the unlink", closed, { forMillis: 1500 })
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "pairing by code: connect answers with the code, the phone enters it, channel.connected with the number",
    () =>
      Effect.gen(function* () {
        const { sim, gateway } = yield* baileysGateway()
        const { key } = yield* newCustomer(gateway)
        const channel = (yield* request(gateway.api, "POST", "/v1/channels", { key, body: {} })).body.id
        const accepted = yield* request(gateway.api, "POST", `/v1/channels/${channel}/connect`, {
          key,
          body: { method: "pairing_code", phone_number: "+15559876543" }
        })
        expect(accepted.status).toBe(202)
        expect(accepted.body.status).toBe("pairing")
        expect(accepted.body.pairing_code).toMatch(/^[A-Z0-9]{8}$/)
        expect((yield* channelOf(gateway, key, channel)).pairing_code).toBe(accepted.body.pairing_code)

        yield* Effect.promise(() => sim.enterPairingCode("15559876543", accepted.body.pairing_code))
        const connected = yield* waitFor(
          "the channel paired by code is connected",
          channelOf(gateway, key, channel),
          (c) => c.status === "connected",
          { attempts: 400 }
        )
        expect(connected.phone_number).toBe("+15559876543")
        expect(connected.pairing_code).toBeNull()
      }).pipe(Effect.scoped),
    120_000
  )
})
