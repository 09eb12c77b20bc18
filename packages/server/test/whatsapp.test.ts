import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as crypto from "node:crypto"
import { sqlFor, testDatabase } from "./support/database.ts"
import { newCustomer } from "./support/admin.ts"
import { apiClient, waitForQr, waitForStatus } from "./support/api.ts"
import { gatewayEnvironment, startGateway } from "./support/gateway.ts"
import { baileysGateway, simulator } from "./support/simulator.ts"
import { testPort } from "./support/ports.ts"
import { staysTrue, waitFor, waitUntil } from "./support/waits.ts"

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
        const { key, client: onFirst } = yield* newCustomer(first, { name: "Real Phone" })
        const channel = (yield* onFirst.channels.create({ headers: {}, payload: { name: "sales" } })).id
        yield* onFirst.channels.connect({ params: { id: channel }, payload: { method: "qr" } })

        const { qr } = yield* waitForQr(onFirst, channel, { attempts: 400 })
        expect(qr).toMatch(/^https:\/\/wa\.me\/settings\/linked_devices#/)
        const png = yield* Effect.promise(() =>
          fetch(`${first.api}/v1/channels/${channel}/qr`, {
            headers: { authorization: `Bearer ${key}`, accept: "image/png" }
          }).then((r) => r.headers.get("content-type"))
        )
        expect(png).toBe("image/png")

        yield* Effect.promise(() => sim.scan(qr, { phoneNumber: "15551234567" }))
        const connected = yield* waitForStatus(onFirst, channel, "connected", { attempts: 400 })
        expect(connected.phone_number).toBe("+15551234567")
        const events = yield* onFirst.events.list({ query: { channel_id: channel } })
        const types = events.data.map((e) => e.type).reverse()
        expect(types[0]).toBe("channel.qr")
        expect(types).toContain("channel.connected")
        // WhatsApp's 515 restart after the scan is part of pairing, not a disconnect
        expect(types).not.toContain("channel.disconnected")
        const audit = yield* onFirst.audit.list({ query: { resource_id: channel } })
        expect(audit.data.map((e) => e.action)).toContain("channel.paired")

        const sql = yield* sqlFor(database.url)
        const stored = yield* sql<{ key_type: string }>`
          SELECT DISTINCT key_type FROM channel_auth_state WHERE channel_id = ${channel}`
        expect(stored.map((row) => row.key_type)).toContain("creds")
        yield* Scope.close(firstScope, Exit.void)

        // a new process: the login comes back from Postgres, decrypted, and no QR is shown
        const second = yield* startGateway(yield* gatewayEnvironment(database.url, env), {
          whatsapp: "baileys"
        })
        const onSecond = yield* apiClient(second.api, key)
        yield* waitForStatus(onSecond, channel, "connected", { attempts: 400 })
        const qrs = yield* onSecond.events.list({ query: { channel_id: channel, type: "channel.qr" } })
        expect(qrs.data).toHaveLength(1)
        expect(sim.connectionsOf("15551234567").length).toBe(1)

        // the phone unlinks the device: logged_out, the login wiped, no reconnect
        expect(sim.inject("15551234567", { kind: "stream-error", code: 401 })).toBe(1)
        yield* waitForStatus(onSecond, channel, "logged_out", { attempts: 400 })
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
        const { client } = yield* newCustomer(gateway)
        const channel = (yield* client.channels.create({ headers: {}, payload: {} })).id
        const accepted = yield* client.channels.connect({
          params: { id: channel },
          payload: { method: "pairing_code", phone_number: "+15559876543" }
        })
        expect(accepted.status).toBe("pairing")
        expect(accepted.pairing_code).toMatch(/^[A-Z0-9]{8}$/)
        expect((yield* client.channels.get({ params: { id: channel } })).pairing_code).toBe(
          accepted.pairing_code
        )

        yield* Effect.promise(() => sim.enterPairingCode("15559876543", accepted.pairing_code!))
        const connected = yield* waitForStatus(client, channel, "connected", { attempts: 400 })
        expect(connected.phone_number).toBe("+15559876543")
        expect(connected.pairing_code).toBeNull()
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "while WhatsApp cannot be reached, GET /qr says why there is no QR yet",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        // nothing listens there: every connection is refused, as with no network
        const port = yield* testPort
        const gateway = yield* startGateway(
          yield* gatewayEnvironment(database.url, { WHATISUP_WA_WS_URL: `ws://127.0.0.1:${port}` }),
          { whatsapp: "baileys" }
        )
        const { client } = yield* newCustomer(gateway, { name: "Offline" })
        const { id } = yield* client.channels.create({ headers: {}, payload: {} })
        yield* client.channels.connect({ params: { id }, payload: { method: "qr" } })
        const detail = yield* waitFor(
          "GET /qr names the failed connection",
          Effect.map(Effect.flip(client.channels.qr({ params: { id } })), (problem) =>
            "detail" in problem ? String(problem.detail) : ""
          ),
          (detail) => detail.includes("ECONNREFUSED")
        )
        expect(detail).toBe(
          `No QR code yet: the last connection to WhatsApp ended (WebSocket Error (connect ECONNREFUSED 127.0.0.1:${port})); the gateway tries again, retry in a few seconds`
        )
      }).pipe(Effect.scoped),
    120_000
  )
})
