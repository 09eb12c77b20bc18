import { describe, expect, it } from "@effect/vitest"
import type { ChannelId, Message } from "@whatisup/domain"
import type { Simulator } from "@whatisup/wa-simulator"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import { newCustomer } from "./support/admin.ts"
import { type ApiClient, apiClient } from "./support/api.ts"
import { lockTable, sqlFor, testDatabase, waitingOnLock } from "./support/database.ts"
import { gatewayEnvironment } from "./support/gateway.ts"
import { type GatewayProcess, spawnGateway, waitReady } from "./support/process.ts"
import { deliverTo, pairedChannel, simulator } from "./support/simulator.ts"
import { waitFor, waitUntil } from "./support/waits.ts"

const PHONE = "15551240001"
const CONTACT = "15557780001"

type Env = Effect.Success<ReturnType<typeof gatewayEnvironment>>

const apiOf = (env: { readonly PORT: string }) => `http://127.0.0.1:${env.PORT}`

/** Gateway processes on one database and the simulator, with a customer whose plan paces sends at `perMinute`. */
const onOneDatabase = (perMinute: number) =>
  Effect.gen(function* () {
    const sim = yield* simulator
    const database = yield* testDatabase
    const sql = yield* sqlFor(database.url)
    const shared = {
      WHATISUP_MASTER_KEYS: `k1:${crypto.randomBytes(32).toString("base64")}`,
      WHATISUP_ADMIN_TOKEN: crypto.randomBytes(32).toString("base64url"),
      WHATISUP_LEASE_TTL: "3s",
      WHATISUP_WA_WS_URL: sim.url,
      LOG_LEVEL: "warn"
    }
    const environment = (nodeId: string) =>
      gatewayEnvironment(database, { ...shared, WHATISUP_NODE_ID: nodeId })
    const start = (env: Env) => Effect.tap(spawnGateway(env), (gateway) => waitReady(gateway, apiOf(env)))
    const envA = yield* environment("node-a")
    const a = yield* start(envA)
    const { client, key } = yield* newCustomer(
      {
        api: apiOf(envA),
        admin: `http://${envA.WHATISUP_ADMIN_LISTEN}`,
        adminToken: envA.WHATISUP_ADMIN_TOKEN
      },
      { plan: { messages_per_minute: perMinute } }
    )
    const channel = yield* pairedChannel(client, sim, PHONE)
    // as a phone's are, the receipts come a moment after WhatsApp's ack, not in the same batch
    sim.setReceipts(CONTACT, { delivered: { delayMs: 500 }, read: { delayMs: 500 } })
    return { sim, sql, environment, start, envA, a, client, key, channel }
  })

const killed = (gateway: GatewayProcess) =>
  Effect.promise(() => {
    gateway.child.kill("SIGKILL")
    return gateway.exited
  })

/** `count` texts accepted by the API, 32 at a time. */
const sendMany = (client: ApiClient, channel: ChannelId, count: number) =>
  Effect.forEach(
    Array.from({ length: count }, (_, i) => i),
    (i) =>
      client.messages.send({
        params: { id: channel },
        headers: {},
        payload: { to: `+${CONTACT}`, type: "text", text: { body: `message ${i}` } }
      }),
    { concurrency: 32 }
  )

/** How many copies of each WhatsApp id the contact's phone decrypted. */
const copiesAtPhone = (sim: Simulator) => {
  const copies = new Map<string, number>()
  for (const message of sim.received(CONTACT)) copies.set(message.id, (copies.get(message.id) ?? 0) + 1)
  return copies
}

/** The channel's messages still queued under a claim: those a killed process may have sent. */
const possiblySent = (sql: Effect.Success<ReturnType<typeof sqlFor>>, channel: ChannelId) =>
  Effect.map(
    sql<{ n: number }>`
      SELECT count(*)::int AS n FROM messages
      WHERE channel_id = ${channel} AND status = 'queued' AND claim_token IS NOT NULL`,
    (rows) => rows[0]!.n
  ).pipe(Effect.orDie)

/** The statuses that say the recipient's phone got a message. */
const deliveredOrLater = ["delivered", "read", "played"]

/**
 * Every message reached the phone (by WhatsApp id) and is stored as delivered or later: a receipt
 * is acknowledged to WhatsApp only once stored, so one that came just before a kill comes again.
 */
const allDelivered = (
  sim: Simulator,
  sql: Effect.Success<ReturnType<typeof sqlFor>>,
  sent: ReadonlyArray<Message>
) =>
  waitFor(
    "every message at the phone, and delivered or later",
    Effect.gen(function* () {
      const copies = copiesAtPhone(sim)
      const statuses = yield* sql<{ status: string; n: number }>`
        SELECT status, count(*)::int AS n FROM messages WHERE direction = 'outbound' GROUP BY status`.pipe(
        Effect.orDie
      )
      return {
        atPhone: sent.filter((message) => copies.has(message.whatsapp_id)).length,
        statuses: Object.fromEntries(statuses.map((row) => [row.status, row.n])) as Record<string, number>
      }
    }),
    (seen) =>
      seen.atPhone === sent.length &&
      deliveredOrLater.reduce((sum, status) => sum + (seen.statuses[status] ?? 0), 0) === sent.length,
    { attempts: 1200, everyMillis: 100 }
  )

/**
 * No message reached the phone under two WhatsApp ids: each id is one of ours and was decrypted as
 * that message. Answers how many copies came beyond one of each (sent again under the same id).
 */
const exactlyOnceById = (sim: Simulator, sent: ReadonlyArray<Message>) => {
  const ours = new Map(sent.map((message, i) => [message.whatsapp_id, `message ${i}`]))
  const received = sim.received(CONTACT)
  expect(new Set(received.map((message) => message.id)).size).toBe(sent.length)
  for (const message of received) {
    expect(ours.get(message.id)).toBe(
      message.message.extendedTextMessage?.text ?? message.message.conversation
    )
  }
  return received.length - sent.length
}

describe("messages through crashes of the gateway process", () => {
  it.live(
    "1,000 messages queued, the gateway killed with SIGKILL mid-drain and restarted: every one reaches the phone once by its WhatsApp id and ends delivered or later",
    () =>
      Effect.gen(function* () {
        const { sim, sql, start, envA, a, client, key, channel } = yield* onOneDatabase(3_000)
        const sent = yield* sendMany(client, channel, 1000)
        yield* waitUntil(
          "the drain is under way",
          Effect.sync(() => copiesAtPhone(sim).size >= 150),
          { attempts: 600, everyMillis: 20 }
        )
        yield* killed(a)
        const before = copiesAtPhone(sim).size
        expect(before).toBeLessThan(1000)
        const mayGoAgain = yield* possiblySent(sql, channel)

        yield* start(envA)
        const again = yield* apiClient(apiOf(envA), key)
        yield* allDelivered(sim, sql, sent)
        // a message sent just before the kill may go again, under the same id: never as a second
        // message, and only one the killed process had claimed and WhatsApp had not acknowledged
        expect(exactlyOnceById(sim, sent)).toBeLessThanOrEqual(mayGoAgain)
        const one = yield* again.messages.get({ params: { id: sent[999]!.id } })
        expect(deliveredOrLater).toContain(one.status)
      }).pipe(Effect.scoped),
    300_000
  )

  it.live(
    "the same with a takeover: the owner killed mid-drain, a second process takes the channel over, finishes the queue, and every message ends delivered or later",
    () =>
      Effect.gen(function* () {
        const { sim, sql, environment, start, a, client, key, channel } = yield* onOneDatabase(3_000)
        const envB = yield* environment("node-b")
        yield* start(envB)
        const sent = yield* sendMany(client, channel, 1000)
        yield* waitUntil(
          "the drain is under way",
          Effect.sync(() => copiesAtPhone(sim).size >= 150),
          { attempts: 600, everyMillis: 20 }
        )
        const owner = yield* sql<{
          owner: string
        }>`SELECT owner FROM channel_leases WHERE channel_id = ${channel}`
        expect(owner[0]?.owner).toBe("node-a")
        yield* killed(a)
        const mayGoAgain = yield* possiblySent(sql, channel)
        const onB = yield* apiClient(apiOf(envB), key)
        yield* allDelivered(sim, sql, sent)
        expect(exactlyOnceById(sim, sent)).toBeLessThanOrEqual(mayGoAgain)
        const taken = yield* sql<{
          owner: string
        }>`SELECT owner FROM channel_leases WHERE channel_id = ${channel}`
        expect(taken[0]?.owner).toBe("node-b")
        expect(deliveredOrLater).toContain((yield* onB.messages.get({ params: { id: sent[0]!.id } })).status)
      }).pipe(Effect.scoped),
    300_000
  )

  it.live(
    "a message sent while its Signal session's step cannot be stored, then SIGKILL: the message and the next one both decrypt at the phone, once each",
    () =>
      Effect.gen(function* () {
        const { sim, sql, start, envA, a, client, channel } = yield* onOneDatabase(60)
        const send = (body: string) =>
          client.messages.send({
            params: { id: channel },
            headers: {},
            payload: { to: `+${CONTACT}`, type: "text", text: { body } }
          })
        const textsAtPhone = () =>
          sim
            .received(CONTACT)
            .map((message) => message.message.extendedTextMessage?.text ?? message.message.conversation)
        const statusOf = (id: string) =>
          sql<{ status: string }>`SELECT status FROM messages WHERE id = ${id}`.pipe(
            Effect.map((rows) => rows[0]?.status ?? ""),
            Effect.orDie
          )
        // a first message opens the Signal session with the contact's phone, and its step is stored
        const first = yield* send("first")
        yield* waitUntil(
          "the first message at the phone and delivered",
          Effect.map(
            statusOf(first.id),
            (status) => deliveredOrLater.includes(status) && textsAtPhone().includes("first")
          ),
          { attempts: 600, everyMillis: 20 }
        )

        // the login store is locked from another connection (reads still pass): the session's step for
        // the next message cannot be stored, and the gateway dies right there
        const lock = yield* lockTable(sql, "channel_auth_state", "SHARE")
        const second = yield* send("second")
        yield* waitUntil(
          "the second message's session step waiting on the lock",
          Effect.map(lock.waiting, (n) => n > 0),
          { attempts: 600, everyMillis: 20 }
        )
        // were the message on the wire already, WhatsApp's ack would be stored by now (it comes at
        // once, and is stored apart from the session)
        yield* Effect.sleep("2 seconds")
        yield* killed(a)
        yield* lock.release

        yield* start(envA)
        const third = yield* send("third")
        yield* waitUntil(
          "all three messages at the phone, and delivered or later",
          Effect.gen(function* () {
            const statuses = yield* Effect.forEach([first, second, third], (message) => statusOf(message.id))
            const texts = textsAtPhone()
            return (
              statuses.every((status) => deliveredOrLater.includes(status)) &&
              ["first", "second", "third"].every((text) => texts.includes(text))
            )
          }),
          { attempts: 1200, everyMillis: 50 }
        )
        // the same WhatsApp id may come twice (sent again after the kill), never as another message
        const byId = new Map(sim.received(CONTACT).map((message) => [message.id, message]))
        expect([...byId.keys()].sort()).toEqual([first, second, third].map((m) => m.whatsapp_id).sort())
      }).pipe(Effect.scoped),
    300_000
  )

  it.live(
    "a delivery receipt whose store is held when the gateway is killed with SIGKILL comes again at the next login: the message ends delivered or later",
    () =>
      Effect.gen(function* () {
        const { sim, sql, start, envA, a, client, channel } = yield* onOneDatabase(60)
        // the receipts come well after the server's ack, which is stored first
        sim.setReceipts(CONTACT, { delivered: { delayMs: 3000 } })
        const [message] = yield* sendMany(client, channel, 1)
        const statusOf = sql<{ status: string }>`SELECT status FROM messages WHERE id = ${message!.id}`.pipe(
          Effect.map((rows) => rows[0]?.status),
          Effect.orDie
        )
        yield* waitUntil(
          "the message sent",
          Effect.map(statusOf, (status) => status === "sent"),
          { attempts: 600, everyMillis: 20 }
        )

        // the messages table is locked from another connection (reads still pass): the receipt's
        // store waits on it, and the gateway dies right there
        const lock = yield* lockTable(sql, "messages", "SHARE")
        expect(yield* statusOf).toBe("sent")
        yield* waitUntil(
          "the receipt's store waiting on the lock",
          waitingOnLock(sql, "%UPDATE messages m SET status = f.status%"),
          { attempts: 600, everyMillis: 20 }
        )
        yield* killed(a)
        yield* lock.release
        expect(yield* statusOf).toBe("sent")

        yield* start(envA)
        yield* waitUntil(
          "the receipt delivered again, stored, then acknowledged",
          Effect.gen(function* () {
            return (
              deliveredOrLater.includes((yield* statusOf) ?? "") && sim.pendingReceipts(PHONE).length === 0
            )
          }),
          { attempts: 1200, everyMillis: 50 }
        )
        const history = yield* sql<{ status: string }>`
          SELECT status FROM message_statuses WHERE message_id = ${message!.id} ORDER BY status`
        expect(history.map((row) => row.status)).toContain("delivered")
      }).pipe(Effect.scoped),
    300_000
  )

  it.live(
    "an inbound message stored but not yet acknowledged when the gateway is killed with SIGKILL is delivered again, decrypts, and is stored and announced once",
    () =>
      Effect.gen(function* () {
        const { sim, sql, start, envA, a, channel } = yield* onOneDatabase(60)
        const stored = sql<{ whatsapp_id: string; n: number }>`
          SELECT whatsapp_id, count(*)::int AS n FROM messages
          WHERE channel_id = ${channel} AND direction = 'inbound' GROUP BY whatsapp_id`.pipe(
          Effect.map((rows) => new Map(rows.map((row) => [row.whatsapp_id, row.n]))),
          Effect.orDie
        )
        // a first message opens the phone's Signal session with the device
        const first = yield* deliverTo(sim, PHONE, { from: CONTACT, message: { conversation: "hello" } })
        yield* waitUntil(
          "the first message stored and acknowledged",
          Effect.gen(function* () {
            return (yield* stored).has(first.id) && sim.pending(PHONE).length === 0
          }),
          { attempts: 600, everyMillis: 20 }
        )

        // the login store is locked from another connection: the Signal session's advance, written
        // after the message is stored and before its receipt, waits; the gateway dies right there
        const lock = yield* lockTable(sql, "channel_auth_state", "SHARE")
        const second = yield* deliverTo(sim, PHONE, {
          from: CONTACT,
          message: { conversation: "the worst moment" }
        })
        yield* waitUntil(
          "the second message stored",
          Effect.map(stored, (s) => s.has(second.id)),
          {
            attempts: 600,
            everyMillis: 20
          }
        )
        expect(sim.pending(PHONE).map((each) => each.id)).toEqual([second.id])
        yield* killed(a)
        yield* lock.release

        yield* start(envA)
        yield* waitUntil(
          "WhatsApp delivered it again and it was acknowledged",
          Effect.sync(() => sim.pending(PHONE).length === 0),
          {
            attempts: 1200,
            everyMillis: 50
          }
        )
        const third = yield* deliverTo(sim, PHONE, { from: CONTACT, message: { conversation: "after" } })
        yield* waitUntil(
          "a later message stored too",
          Effect.map(stored, (s) => s.has(third.id)),
          {
            attempts: 600,
            everyMillis: 20
          }
        )
        const rows = yield* stored
        expect([...rows.entries()]).toEqual(
          expect.arrayContaining([
            [first.id, 1],
            [second.id, 1],
            [third.id, 1]
          ])
        )
        expect(rows.size).toBe(3)
        const events = yield* sql<{ whatsapp_id: string }>`
          SELECT data->>'whatsapp_id' AS whatsapp_id FROM events
          WHERE channel_id = ${channel} AND type = 'message.received' ORDER BY seq`
        expect(events.map((event) => event.whatsapp_id)).toEqual([first.id, second.id, third.id])
        const text = yield* sql<{ body: string }>`
          SELECT content->>'body' AS body FROM messages WHERE channel_id = ${channel} AND whatsapp_id = ${second.id}`
        expect(text[0]?.body).toBe("the worst moment")
      }).pipe(Effect.scoped),
    300_000
  )
})
