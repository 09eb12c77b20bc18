import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Scope } from "effect"
import * as crypto from "node:crypto"
import { Change, ChannelLifecycle } from "../src/channels/lifecycle.ts"
import { AuthStates } from "../src/channels/loginStore.ts"
import { TransportEvent } from "../src/channels/transport.ts"
import { Outbox } from "../src/messages/outbox.ts"
import { idleInTransaction, sqlFor, testDatabase } from "./support/database.ts"
import { waitFor, waitUntil } from "./support/waits.ts"
import { newCustomer } from "./support/admin.ts"
import { waitForQr, waitForStatus } from "./support/api.ts"
import { gatewayEnvironment, startGateway } from "./support/gateway.ts"
import { metricsText, valueIn } from "./support/metrics.ts"

/** A gateway in this process, and a channel pairing on it: its lease held, its connection open. */
const pairingChannel = Effect.gen(function* () {
  const database = yield* testDatabase
  const gateway = yield* startGateway(yield* gatewayEnvironment(database.url))
  const { client } = yield* newCustomer(gateway)
  const { id: channel } = yield* client.channels.create({ headers: {}, payload: {} })
  yield* client.channels.connect({ params: { id: channel }, payload: { method: "qr" } })
  yield* waitUntil(
    "the channel's connection is open",
    Effect.sync(() => gateway.whatsapp.isOpen(channel))
  )
  return { database, gateway, client, channel }
})

/** A text queued on the pairing channel (no drain runs yet), and the fence of the lease it is under now. */
const queuedText = (context: Effect.Success<typeof pairingChannel>, body: string) =>
  Effect.gen(function* () {
    const { database, client, channel } = context
    const sent = yield* client.messages.send({
      params: { id: channel },
      headers: {},
      payload: { to: "+15557654321", type: "text", text: { body } }
    })
    const sql = yield* sqlFor(database.url)
    const lease = (yield* sql<{ generation: number }>`
      SELECT generation::int AS generation FROM channel_leases WHERE channel_id = ${channel}`)[0]!
    return { sent, sql, lease, fence: { channelId: channel, generation: lease.generation } }
  })

describe("lease fencing", () => {
  it.live(
    "a stale owner's writes are refused, and change nothing",
    () =>
      Effect.gen(function* () {
        const { database, gateway, channel } = yield* pairingChannel
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
        // nor does its WhatsApp login store take a key (Baileys writes one for every message it encrypts)
        const keysBefore =
          yield* sql`SELECT key_type, key_id, ciphertext FROM channel_auth_state WHERE channel_id = ${channel}`
        const keyRefused = yield* Context.get(gateway.services, AuthStates)
          .forChannel(stale)
          .write([{ type: "session", id: "15557654321.0", value: "a session" }])
          .pipe(Effect.flip)
        expect(keyRefused._tag).toBe("LeaseLost")
        expect(
          yield* sql`SELECT key_type, key_id, ciphertext FROM channel_auth_state WHERE channel_id = ${channel}`
        ).toEqual(keysBefore)

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
    "a stale owner claims nothing from the outbox, and stores, fails or reports nothing in it",
    () =>
      Effect.gen(function* () {
        const context = yield* pairingChannel
        const { gateway, client, channel } = context
        const { sent, sql, lease, fence: current } = yield* queuedText(context, "for the lease's holder only")
        const outbox = Context.get(gateway.services, Outbox)
        const stale = { channelId: channel, generation: lease.generation - 1 }
        const row = () =>
          Effect.map(
            sql<{ claim_token: string | null; claim_generation: number | null; has_content: boolean }>`
              SELECT claim_token::text AS claim_token, claim_generation::int AS claim_generation,
                wa_content IS NOT NULL AS has_content
              FROM messages WHERE id = ${sent.id}`,
            (rows) => rows[0]!
          )
        const unclaimed = { claim_token: null, claim_generation: null, has_content: false }

        // an older generation of this very channel's lease: its claim takes nothing, and fails
        expect((yield* outbox.claim(stale, 9001, 10).pipe(Effect.flip))._tag).toBe("LeaseLost")
        expect(yield* row()).toEqual(unclaimed)

        // another process takes the lease over: the old generation is refused everything
        yield* sql`INSERT INTO gateway_nodes (node_id, expires_at) VALUES ('another-node', now() + interval '1 hour')`
        yield* sql`UPDATE channel_leases SET owner = 'another-node', generation = generation + 1 WHERE channel_id = ${channel}`
        expect((yield* outbox.claim(current, 9002, 10).pipe(Effect.flip))._tag).toBe("LeaseLost")
        expect(
          (yield* outbox
            .prepared(current, [{ id: sent.id, content: new Uint8Array([1, 2, 3]) }])
            .pipe(Effect.flip))._tag
        ).toBe("LeaseLost")
        expect(
          (yield* outbox
            .fail(current, [{ id: sent.id, status: "failed", reason: "expired", detail: "stale" }])
            .pipe(Effect.flip))._tag
        ).toBe("LeaseLost")
        expect(
          yield* outbox.reportAll([
            { fence: current, reports: [{ _tag: "ServerAck", whatsappId: sent.whatsapp_id, error: null }] }
          ])
        ).toEqual(["lease_lost"])
        expect(yield* row()).toEqual(unclaimed)
        expect(
          (yield* client.messages.get({ params: { id: sent.id } })).statuses.map((s) => s.status)
        ).toEqual(["queued"])

        // the lease's holder (given back to this process under a newer generation) claims the message
        const [handedBack] = yield* sql<{ generation: number }>`
          UPDATE channel_leases SET owner = ${gateway.config.nodeId}, generation = generation + 1
          WHERE channel_id = ${channel} RETURNING generation::int AS generation`
        expect(handedBack!.generation).toBe(lease.generation + 2)
        const holder = { channelId: channel, generation: handedBack!.generation }
        const taken = yield* outbox.claim(holder, 9003, 10)
        expect(taken.map((item) => item.id)).toEqual([sent.id])
        expect(yield* row()).toMatchObject({ claim_token: "9003", claim_generation: lease.generation + 2 })

        // and its reports apply, each judged in order: the repeated receipt moves nothing (ignored)
        const counted = (text: string) =>
          ["ack", "receipt"].flatMap((kind) =>
            ["applied", "ignored"].map((outcome) =>
              valueIn(text, "message_reports_total", `kind="${kind}"`, `outcome="${outcome}"`)
            )
          )
        const before = counted(yield* metricsText(gateway))
        // beside a batch under the stale generation, refused alone
        expect(
          yield* outbox.reportAll([
            {
              fence: holder,
              reports: [
                { _tag: "ServerAck", whatsappId: sent.whatsapp_id, error: null },
                { _tag: "Receipt", whatsappId: sent.whatsapp_id, receipt: "delivered" },
                { _tag: "Receipt", whatsappId: sent.whatsapp_id, receipt: "delivered" },
                // an id no text column can hold (a hostile peer's): no message's, ignored
                { _tag: "Receipt", whatsappId: "bad\u0000id\ud800", receipt: "read" }
              ]
            },
            { fence: current, reports: [{ _tag: "Receipt", whatsappId: sent.whatsapp_id, receipt: "read" }] }
          ])
        ).toEqual(["applied", "lease_lost"])
        expect(
          (yield* client.messages.get({ params: { id: sent.id } })).statuses.map((s) => s.status)
        ).toEqual(["queued", "sent", "delivered"])
        const after = counted(yield* metricsText(gateway))
        // [ack applied, ack ignored, receipt applied, receipt ignored]
        expect(after.map((n, i) => n - before[i]!)).toEqual([1, 0, 1, 2])
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a drain that ends inside a claim gives back what it never sent: past WHATISUP_MESSAGE_MAX_AGE those fail expired, and one an earlier claim may have sent stays possibly sent",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const gateway = yield* startGateway(
          yield* gatewayEnvironment(database.url, { WHATISUP_MESSAGE_MAX_AGE: "3s" })
        )
        // one message a minute: the first goes at once, the next waits on the pace
        const { client } = yield* newCustomer(gateway, { plan: { messages_per_minute: 1 } })
        const { id: channel } = yield* client.channels.create({ headers: {}, payload: {} })
        yield* client.channels.connect({ params: { id: channel }, payload: { method: "qr" } })
        yield* waitForQr(client, channel)
        // queued while the channel pairs; the third as a process that died while sending it left it
        const sent = yield* Effect.forEach([1, 2, 3, 4], (n) =>
          client.messages.send({
            params: { id: channel },
            headers: {},
            payload: { to: "+15557654321", type: "text", text: { body: `paced ${n}` } }
          })
        )
        const sql = yield* sqlFor(database.url)
        yield* sql`UPDATE messages SET claim_token = 7 WHERE id = ${sent[2]!.id}`
        expect(yield* gateway.whatsapp.pair(channel, "+15550007779")).toBe(true)
        yield* waitForStatus(client, channel, "connected")
        const claims = Effect.map(
          sql<{ id: string; claim_token: string | null }>`
            SELECT id, claim_token::text AS claim_token FROM messages
            WHERE channel_id = ${channel} AND status = 'queued' AND claim_token IS NOT NULL ORDER BY id`,
          (rows) => rows.map((row) => [row.id, row.claim_token] as const)
        ).pipe(Effect.orDie)
        // the first sent; the others claimed with it, the second's send waiting on the pace
        yield* waitFor(
          "the first message sent",
          client.messages.get({ params: { id: sent[0]!.id } }),
          (m) => m.status === "sent",
          { attempts: 400, everyMillis: 25 }
        )
        const claimed = yield* claims
        expect(claimed.map(([id]) => id)).toEqual(sent.slice(1).map((m) => m.id))
        expect(claimed.every(([, token]) => token !== "7" && token !== "0")).toBe(true)

        // the connection ends and cannot be made again: the drain ends inside its claim
        yield* gateway.whatsapp.failConnects(channel, 1000)
        expect(
          yield* gateway.whatsapp.emit(
            channel,
            TransportEvent.Close({ code: 503, reason: "service unavailable" })
          )
        ).toBe(true)
        // what it never sent is unclaimed; the one the dead process may have sent stays possibly sent
        yield* waitFor("the claims given back", claims, (rows) => rows.length === 1, {
          attempts: 400,
          everyMillis: 25
        })
        expect(yield* claims).toEqual([[sent[2]!.id, "0"]])
        // the sweep (every 10 s) fails the others, never sent
        for (const message of [sent[1]!, sent[3]!]) {
          const failed = yield* waitFor(
            "an unsent message expired",
            client.messages.get({ params: { id: message.id } }),
            (m) => m.status !== "queued",
            { attempts: 300, everyMillis: 100 }
          )
          expect(failed.failure?.reason).toBe("expired")
        }
        // as old, but possibly sent: the same sweep left it, to be sent again under its WhatsApp id
        expect((yield* client.messages.get({ params: { id: sent[2]!.id } })).status).toBe("queued")
        expect(gateway.whatsapp.sent(channel).map((m) => m.id)).toEqual([sent[0]!.whatsapp_id])
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a round of reports locks each channel's row before its messages (as a logout or a delete does): a channel held elsewhere is held back, its messages untouched, the others applied",
    () =>
      Effect.gen(function* () {
        const context = yield* pairingChannel
        const { database, gateway, client, channel } = context
        const { sent, sql, fence: holder } = yield* queuedText(context, "reported while the channel is held")
        // a second channel of the same customer, its lease held by this process too
        const { id: other } = yield* client.channels.create({ headers: {}, payload: {} })
        yield* client.channels.connect({ params: { id: other }, payload: { method: "qr" } })
        yield* waitUntil(
          "the second channel's connection is open",
          Effect.sync(() => gateway.whatsapp.isOpen(other))
        )
        const second = yield* queuedText({ ...context, channel: other }, "reported beside it")
        const outbox = Context.get(gateway.services, Outbox)
        const acks = (whatsappId: string) => [{ _tag: "ServerAck" as const, whatsappId, error: null }]

        // another transaction holds the first channel's row, as a logout does before it touches the messages
        const locker = yield* sqlFor(database.url)
        const release = yield* Deferred.make<void>()
        const holding = yield* locker
          .withTransaction(
            Effect.andThen(
              locker`SELECT 1 FROM channels WHERE id = ${channel} FOR UPDATE`,
              Deferred.await(release)
            )
          )
          .pipe(Effect.forkScoped)
        yield* waitUntil(
          "the channel's row is held",
          idleInTransaction(sql, "%FROM channels WHERE id = $1 FOR UPDATE%")
        )
        const round = yield* outbox
          .reportAll([
            { fence: holder, reports: acks(sent.whatsapp_id) },
            { fence: second.fence, reports: acks(second.sent.whatsapp_id) }
          ])
          .pipe(Effect.forkScoped)
        // the round does not wait for the held row: it ends while the row is still held
        expect(yield* Fiber.join(round)).toEqual(["held_back", "applied"])
        expect((yield* client.messages.get({ params: { id: sent.id } })).status).toBe("queued")
        expect((yield* client.messages.get({ params: { id: second.sent.id } })).status).toBe("sent")

        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holding)
        expect(yield* outbox.reportAll([{ fence: holder, reports: acks(sent.whatsapp_id) }])).toEqual([
          "applied"
        ])
        expect((yield* client.messages.get({ params: { id: sent.id } })).status).toBe("sent")
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
