import { expect, layer } from "@effect/vitest"
import type { ChannelId, CustomerId, EventId, EventType } from "@whatisup/domain"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import * as net from "node:net"
import { newId } from "../src/db/ids.ts"
import { type Feed, makeEventFeed, type Position } from "../src/events/eventFeed.ts"
import { adminOf, newCustomer } from "./support/admin.ts"
import { waitForQr, waitForStatus } from "./support/api.ts"
import { testDatabase } from "./support/database.ts"
import {
  eventLogOf,
  type OpenedStream,
  openedEventStream,
  openEventStream,
  refusedEventStream,
  type StreamedEvent
} from "./support/eventStream.ts"
import { gatewayEnvironment, layerTestGateway, startGateway, TestGateway } from "./support/gateway.ts"
import { startReceiver } from "./support/receiver.ts"
import { pause, waitFor } from "./support/waits.ts"

type Log = Effect.Success<ReturnType<typeof eventLogOf>>["log"]

const appendTo =
  (log: Log, customerId: CustomerId) =>
  (channelId: ChannelId | null, type: EventType = "message.received", data: Record<string, unknown> = {}) =>
    log.append({ customerId, channelId, type, data })

const idsOf = (events: ReadonlyArray<{ readonly id: string }>) => events.map((event) => event.id)

layer(layerTestGateway({ WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32" }), {
  timeout: 120_000,
  excludeTestServices: true
})("GET /v1/events/stream: live events as Server-Sent Events", (it) => {
  it.effect(
    "events arrive live and in order, each as its id, its type and the JSON GET /v1/events lists",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { key, client, customerId } = yield* newCustomer(gateway, { name: "Live Reader" })
        const { log } = yield* eventLogOf(gateway)
        const append = appendTo(log, customerId)
        const channel = yield* client.channels.create({ headers: {}, payload: {} })
        const earlier = yield* append(channel.id)

        const stream = yield* openedEventStream(gateway.api, { key })
        expect(stream.headers.get("content-type")).toBe("text/event-stream")
        expect(stream.headers.get("cache-control")).toBe("no-store")
        const appended: Array<EventId> = []
        for (let i = 0; i < 12; i++) {
          appended.push(
            yield* append(i % 3 === 0 ? null : channel.id, i % 2 === 0 ? "message.sent" : "message.read")
          )
        }
        const received = yield* stream.eventsThrough((event) => event.id === appended.at(-1))
        // from now on: what happened before the stream opened is not carried
        expect(idsOf(received)).toEqual(appended)
        expect(idsOf(received)).not.toContain(earlier)
        expect(stream.frames[0]).toEqual({ retry: "5000", comments: [] })
        const listed = yield* client.events.list({ query: { limit: 100 } })
        for (const event of received) {
          expect(event.id).toBe(event.data.id)
          expect(event.event).toBe(event.data.type)
          expect(event.data).toEqual(listed.data.find((entry) => entry.id === event.id))
        }
      }).pipe(Effect.scoped)
  )

  it.effect("a stream with nothing to carry sends a keep-alive comment every 15 s", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const { key } = yield* newCustomer(gateway, { name: "Quiet Reader" })
      const stream = yield* openedEventStream(gateway.api, { key })
      expect(yield* stream.nextFrame).toEqual({ retry: "5000", comments: [] })
      expect(yield* stream.nextFrame).toEqual({ comments: ["keep-alive"] })
    }).pipe(Effect.scoped)
  )

  it.effect("a channel's connection is followed live, in data.sequence order", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const { key, client } = yield* newCustomer(gateway, { name: "Pairing Watcher" })
      const channel = yield* client.channels.create({ headers: {}, payload: {} })
      const stream = yield* openedEventStream(gateway.api, { key, query: `channel_id=${channel.id}` })
      yield* client.channels.connect({ params: { id: channel.id }, payload: { method: "qr" } })
      yield* waitForQr(client, channel.id)
      yield* gateway.whatsapp.pair(channel.id, "+15551230001")
      yield* waitForStatus(client, channel.id, "connected")
      const received = yield* stream.eventsThrough((event) => event.event === "channel.connected")
      expect(received.map((event) => event.data.data.sequence)).toEqual(received.map((_, i) => i + 1))
      expect(received.at(-1)!.data.data).toMatchObject({
        channel_id: channel.id,
        phone_number: "+15551230001"
      })
      expect(new Set(received.slice(0, -1).map((event) => event.event))).toEqual(new Set(["channel.qr"]))
    }).pipe(Effect.scoped)
  )

  it.effect(
    "a key bound to a channel sees its channel's events only; a customer's key also webhook.test",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { key, client, customerId } = yield* newCustomer(gateway, { name: "Two Channels" })
        const { log } = yield* eventLogOf(gateway)
        const append = appendTo(log, customerId)
        const a = yield* client.channels.create({ headers: {}, payload: { name: "a" } })
        const b = yield* client.channels.create({ headers: {}, payload: { name: "b" } })
        const bound = yield* client.apiKeys.create({ headers: {}, payload: { channel_id: a.id } })
        const receiver = yield* startReceiver()
        const endpoint = yield* client.webhooks.create({ headers: {}, payload: { url: receiver.url } })

        const wide = yield* openedEventStream(gateway.api, { key })
        const ofA = yield* openedEventStream(gateway.api, { key: bound.key })
        // the list answers nothing for another channel: so does the stream
        const elsewhere = yield* openedEventStream(gateway.api, {
          key: bound.key,
          query: `channel_id=${b.id}`
        })
        const a1 = yield* append(a.id)
        const b1 = yield* append(b.id)
        const test = (yield* client.webhooks.test({ params: { id: endpoint.id } })).event_id
        const a2 = yield* append(a.id)

        expect(idsOf(yield* wide.eventsThrough((event) => event.id === a2))).toEqual([a1, b1, test, a2])
        expect(idsOf(yield* ofA.eventsThrough((event) => event.id === a2))).toEqual([a1, a2])
        // its key revoked, the stream ends: it carried nothing before
        yield* client.apiKeys.revoke({ params: { id: bound.id } })
        yield* elsewhere.ends
      }).pipe(Effect.scoped)
  )

  it.effect("channel_id and type filter the stream as they filter the list", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const { key, client, customerId } = yield* newCustomer(gateway, { name: "Filterer" })
      const { log } = yield* eventLogOf(gateway)
      const append = appendTo(log, customerId)
      const a = yield* client.channels.create({ headers: {}, payload: {} })
      const b = yield* client.channels.create({ headers: {}, payload: {} })
      const ofA = yield* openedEventStream(gateway.api, { key, query: `channel_id=${a.id}` })
      const sent = yield* openedEventStream(gateway.api, { key, query: "type=message.sent" })
      const sentOfB = yield* openedEventStream(gateway.api, {
        key,
        query: `type=message.sent&channel_id=${b.id}`
      })
      const events = [
        yield* append(a.id, "message.sent"),
        yield* append(b.id, "message.sent"),
        yield* append(a.id, "message.read"),
        yield* append(b.id, "message.read"),
        yield* append(null, "webhook.test"),
        yield* append(a.id, "message.sent"),
        yield* append(b.id, "message.sent")
      ]
      const [a1, b1, a2, , , a3, b3] = events
      expect(idsOf(yield* ofA.eventsThrough((event) => event.id === a3))).toEqual([a1, a2, a3])
      expect(idsOf(yield* sent.eventsThrough((event) => event.id === b3))).toEqual([a1, b1, a3, b3])
      expect(idsOf(yield* sentOfB.eventsThrough((event) => event.id === b3))).toEqual([b1, b3])
    }).pipe(Effect.scoped)
  )

  it.effect(
    "Last-Event-ID resumes with exactly the events missed, one committed behind a later one included",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { key, client, customerId } = yield* newCustomer(gateway, { name: "Reconnecter" })
        const { log, sql } = yield* eventLogOf(gateway)
        const append = appendTo(log, customerId)
        const a = yield* client.channels.create({ headers: {}, payload: {} })
        const b = yield* client.channels.create({ headers: {}, payload: {} })

        const first = yield* openedEventStream(gateway.api, { key })
        const e1 = yield* append(a.id)
        const e2 = yield* append(b.id)
        expect(idsOf(yield* first.eventsThrough((event) => event.id === e2))).toEqual([e1, e2])
        yield* first.close

        // disconnected: an event's transaction begins, and a later one commits before it
        const appended = yield* Deferred.make<EventId>()
        const release = yield* Deferred.make<void>()
        const held = yield* Effect.forkChild(
          sql.withTransaction(
            Effect.gen(function* () {
              yield* Deferred.succeed(appended, yield* append(a.id))
              yield* Deferred.await(release)
            })
          )
        )
        const late = yield* Deferred.await(appended)
        const e3 = yield* append(b.id)
        const resumed = yield* openedEventStream(gateway.api, { key, lastEventId: e2 })
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(held)
        const e4 = yield* append(a.id)

        expect(idsOf(yield* resumed.eventsThrough((event) => event.id === e4))).toEqual([late, e3, e4])
        const fromLate = yield* openedEventStream(gateway.api, { key, lastEventId: late })
        expect(idsOf(yield* fromLate.eventsThrough((event) => event.id === e4))).toEqual([e3, e4])
        // a channel's stream takes its sequence number too: 0 is all of it
        const ofA = yield* openedEventStream(gateway.api, {
          key,
          query: `channel_id=${a.id}`,
          lastEventId: "1"
        })
        expect(idsOf(yield* ofA.eventsThrough((event) => event.id === e4))).toEqual([late, e4])
        const allOfB = yield* openedEventStream(gateway.api, {
          key,
          query: `channel_id=${b.id}`,
          lastEventId: "0"
        })
        expect(idsOf(yield* allOfB.eventsThrough((event) => event.id === e3))).toEqual([e2, e3])
        const afterE1 = yield* openedEventStream(gateway.api, {
          key,
          query: `channel_id=${a.id}`,
          lastEventId: e1
        })
        expect(idsOf(yield* afterE1.eventsThrough((event) => event.id === e4))).toEqual([late, e4])
      }).pipe(Effect.scoped)
  )

  it.effect("a customer's events come in the order of their transactions' ids as numbers, not as text", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const { key, customerId } = yield* newCustomer(gateway, { name: "Old Timer" })
      const { log, sql } = yield* eventLogOf(gateway)
      // rows as transactions 998, 999 and 1000 wrote them: "1000" sorts before "999" as text
      const written = [998, 999, 1000].map((txid) => ({ txid, id: newId.event() }))
      for (const { txid, id } of written) {
        yield* sql`
          INSERT INTO events (id, customer_id, channel_id, seq, type, data, txid)
          VALUES (${id}, ${customerId}, NULL, NULL, 'webhook.test', '{}'::jsonb, ${String(txid)}::xid8)`
      }
      const [first, second, third] = written.map(({ id }) => id)
      const resumed = yield* openedEventStream(gateway.api, { key, lastEventId: first })
      const marker = yield* appendTo(log, customerId)(null, "webhook.test")
      expect(idsOf(yield* resumed.eventsThrough((event) => event.id === marker))).toEqual([
        second,
        third,
        marker
      ])
    }).pipe(Effect.scoped)
  )

  it.effect("a filtered stream moves past the events it does not carry: it never reads them again", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const { client, customerId } = yield* newCustomer(gateway, { name: "Rare Reader" })
      const { log, sql } = yield* eventLogOf(gateway)
      const append = appendTo(log, customerId)
      const channel = yield* client.channels.create({ headers: {}, payload: {} })
      const feed = makeEventFeed(sql, 100)
      const feeds: ReadonlyArray<Feed> = [
        { _tag: "Customer", customerId, type: "webhook.disabled" },
        { _tag: "Channel", customerId, channelId: channel.id, type: "webhook.disabled" }
      ]
      const starts = yield* Effect.forEach(feeds, feed.now)
      const skipped = [yield* append(channel.id), yield* append(channel.id), yield* append(channel.id)]
      for (const [i, which] of feeds.entries()) {
        // settled once the gateway's own transactions begun before the appends have ended: until then
        // the position may stop short, at an event of the three already settled
        const passed = (position: Position) =>
          position._tag === "Sequence"
            ? position.seq === 3
            : position._tag === "Transaction" && position.id === skipped[2]
        const batch = yield* waitFor(
          `the ${which._tag} feed's position passes the events it skips`,
          feed.next(which, starts[i]!),
          (batch) => batch.events.length > 0 || passed(batch.position)
        )
        expect(batch.events).toEqual([])
        expect(batch.position).toMatchObject(which._tag === "Channel" ? { seq: 3 } : { id: skipped[2] })
      }
    }).pipe(Effect.scoped)
  )

  it.effect(
    "with concurrent writers of every length and readers that reconnect anywhere, each stream carries every committed event once, in order",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { client, customerId } = yield* newCustomer(gateway, { name: "Busy Customer" })
        const { log, sql } = yield* eventLogOf(gateway)
        const append = appendTo(log, customerId)
        const [a, b, c] = yield* Effect.forEach([1, 2, 3], () =>
          client.channels.create({ headers: {}, payload: {} })
        )
        // a fixed seed: a failure can be replayed
        let seed = 20260504
        const random = () => {
          seed = (seed * 1103515245 + 12345) % 2147483648
          return seed / 2147483648
        }
        const pick = <A>(choices: ReadonlyArray<A>) => choices[Math.floor(random() * choices.length)]!
        const types: ReadonlyArray<EventType> = ["message.sent", "message.read", "message.delivered"]

        interface Reader {
          readonly query: string | undefined
          readonly carries: (channelId: ChannelId | null, type: EventType) => boolean
          /** Resumes with data.sequence rather than the event's id, every other time. */
          readonly bySequence: boolean
        }
        const readers: ReadonlyArray<Reader> = [
          { query: undefined, carries: () => true, bySequence: false },
          { query: "type=message.sent", carries: (_, type) => type === "message.sent", bySequence: false },
          { query: `channel_id=${a!.id}`, carries: (channel) => channel === a!.id, bySequence: true },
          {
            query: `channel_id=${b!.id}&type=message.read`,
            carries: (channel, type) => channel === b!.id && type === "message.read",
            bySequence: false
          }
        ]
        const keys = yield* Effect.forEach(readers, () => client.apiKeys.create({ headers: {}, payload: {} }))

        /** Reads until an event marked last, dropping the connection after a few events each time. */
        const read = (reader: Reader, key: string, first: OpenedStream) =>
          Effect.gen(function* () {
            const seen: Array<StreamedEvent> = []
            let stream = first
            let resumes = 0
            for (;;) {
              const take = 1 + Math.floor(random() * 6)
              for (let i = 0; i < take; i++) {
                const event = yield* stream.nextEvent
                seen.push(event)
                if (event.data.data.last === true) return { seen, resumes }
              }
              yield* stream.close
              const last = seen.at(-1)!
              resumes++
              stream = yield* openedEventStream(gateway.api, {
                key,
                query: reader.query,
                lastEventId:
                  reader.bySequence && resumes % 2 === 0 ? String(last.data.data.sequence) : last.id
              })
            }
          })
        const opened = yield* Effect.forEach(readers, (reader, i) =>
          openedEventStream(gateway.api, { key: keys[i]!.key, query: reader.query })
        )
        const reading = yield* Effect.forkChild(
          Effect.forEach(readers, (reader, i) => read(reader, keys[i]!.key, opened[i]!), {
            concurrency: "unbounded"
          })
        )

        const committed: Array<{ id: EventId; channelId: ChannelId | null; type: EventType }> = []
        const transaction = Effect.gen(function* () {
          const channelId = pick([a!.id, b!.id, c!.id, null])
          const written: Array<(typeof committed)[number]> = []
          const count = 1 + Math.floor(random() * 3)
          const holdMillis = Math.floor(random() * 40)
          const rollsBack = random() < 0.15
          yield* sql.withTransaction(
            Effect.gen(function* () {
              for (let i = 0; i < count; i++) {
                const type = pick(types)
                written.push({ id: yield* append(channelId, type), channelId, type })
                yield* Effect.sleep(holdMillis)
              }
              if (rollsBack) return yield* Effect.fail("rolled back" as const)
            })
          )
          committed.push(...written)
        }).pipe(Effect.catch(() => Effect.void))
        yield* Effect.forEach(
          Array.from({ length: 6 }),
          () => Effect.forEach(Array.from({ length: 20 }), () => transaction, { discard: true }),
          { concurrency: "unbounded", discard: true }
        )
        // the writers share the seeded draws with the readers, so how many events each reader's filter
        // keeps depends on the timing: 13 more of the narrowest kinds make every reader reconnect at
        // least twice (it takes at most 6 events a connection) however the draws fell
        for (let i = 0; i < 13; i++) {
          for (const [channelId, type] of [
            [a!.id, "message.sent"],
            [b!.id, "message.read"]
          ] as const) {
            committed.push({ id: yield* append(channelId, type), channelId, type })
          }
        }
        for (const [channelId, type] of [
          [a!.id, "message.sent"],
          [b!.id, "message.read"]
        ] as const) {
          committed.push({ id: yield* append(channelId, type, { last: true }), channelId, type })
        }

        const results = yield* Fiber.join(reading)
        const order = new Map(
          (yield* sql<{ id: string; txid: string }>`
            SELECT id, txid::text AS txid FROM events WHERE customer_id = ${customerId}`).map((row) => [
            row.id,
            BigInt(row.txid)
          ])
        )
        readers.forEach((reader, i) => {
          const { seen, resumes } = results[i]!
          const expected = committed.filter((event) => reader.carries(event.channelId, event.type))
          const through = expected.findIndex((event) => event.id === seen.at(-1)!.id)
          const received = idsOf(seen)
          expect(resumes, reader.query).toBeGreaterThan(1)
          expect(new Set(received).size, reader.query).toBe(received.length)
          expect([...received].sort(), reader.query).toEqual(idsOf(expected.slice(0, through + 1)).sort())
          const sorted = [...seen].sort((x, y) => {
            const byTransaction = order.get(x.id)! - order.get(y.id)!
            return byTransaction !== 0n ? (byTransaction < 0n ? -1 : 1) : x.id < y.id ? -1 : 1
          })
          if (reader.query?.includes("channel_id") === true) {
            const sequences = seen.map((event) => event.data.data.sequence as number)
            expect(sequences, reader.query).toEqual([...sequences].sort((x, y) => x - y))
          } else {
            expect(received, reader.query).toEqual(idsOf(sorted))
          }
        })
      }).pipe(Effect.scoped)
  )

  it.effect("a Last-Event-ID the stream cannot have sent is a 400 naming the header", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const { key, client, customerId } = yield* newCustomer(gateway, { name: "Bad Resumer" })
      const { log } = yield* eventLogOf(gateway)
      const a = yield* client.channels.create({ headers: {}, payload: {} })
      const b = yield* client.channels.create({ headers: {}, payload: {} })
      const ofB = yield* appendTo(log, customerId)(b.id)
      const refusals = [
        { lastEventId: "nope" },
        { lastEventId: "evt_0000000000000000000000000z" },
        { lastEventId: "1" },
        { lastEventId: "2", query: `channel_id=${a.id}` },
        { lastEventId: ofB, query: `channel_id=${a.id}` }
      ]
      for (const refusal of refusals) {
        const refused = yield* refusedEventStream(gateway.api, { key, ...refusal })
        expect(refused.status, refusal.lastEventId).toBe(400)
        expect(refused.headers.get("content-type")).toBe("application/problem+json")
        expect(refused.problem).toMatchObject({
          code: "invalid_request",
          errors: [{ path: "header.last-event-id" }]
        })
      }
    }).pipe(Effect.scoped)
  )

  it.effect("another customer's event id is refused exactly as an unknown one, without naming it", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const owner = yield* newCustomer(gateway, { name: "Event Owner" })
      const intruder = yield* newCustomer(gateway, { name: "Event Intruder" })
      const { log } = yield* eventLogOf(gateway)
      const channel = yield* owner.client.channels.create({ headers: {}, payload: {} })
      const theirs = yield* appendTo(log, owner.customerId)(channel.id)
      const unknown = `evt_${"0".repeat(25)}z`
      for (const query of [undefined, `channel_id=${channel.id}`]) {
        const refused = yield* refusedEventStream(gateway.api, {
          key: intruder.key,
          lastEventId: theirs,
          query
        })
        const refusedUnknown = yield* refusedEventStream(gateway.api, {
          key: intruder.key,
          lastEventId: unknown,
          query
        })
        expect(refused.status).toBe(400)
        expect(refused.problem).toEqual(refusedUnknown.problem)
        expect(JSON.stringify(refused.problem)).not.toContain(theirs)
      }
    }).pipe(Effect.scoped)
  )

  it.effect(
    "a key holds 5 streams at most: the sixth is a 429 with Retry-After, and a stream closed frees its slot",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { key, client } = yield* newCustomer(gateway, { name: "Many Tabs" })
        const open = []
        for (let i = 0; i < 5; i++) open.push(yield* openedEventStream(gateway.api, { key }))
        const refused = yield* refusedEventStream(gateway.api, { key })
        expect(refused.status).toBe(429)
        expect(refused.headers.get("retry-after")).toBe("5")
        expect(refused.problem).toMatchObject({ code: "too_many_event_streams", max: 5, retry_after: 5 })
        // another key of the customer has slots of its own
        const other = yield* client.apiKeys.create({ headers: {}, payload: {} })
        yield* openedEventStream(gateway.api, { key: other.key })

        yield* open[0]!.close
        const reopened = yield* waitFor(
          "a closed stream's slot is free again",
          openEventStream(gateway.api, { key }),
          (stream) => stream.status === 200
        )
        expect(reopened.status).toBe(200)
        expect((yield* refusedEventStream(gateway.api, { key })).status).toBe(429)
      }).pipe(Effect.scoped)
  )

  it.effect(
    "a stream ends when its key is revoked, or its customer suspended; reconnecting is then a 401",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const admin = yield* adminOf(gateway)
        const { key, client, customerId } = yield* newCustomer(gateway, { name: "Revoked Reader" })
        const second = yield* client.apiKeys.create({ headers: {}, payload: {} })
        const revoked = yield* openedEventStream(gateway.api, { key: second.key })
        const suspended = yield* openedEventStream(gateway.api, { key })
        yield* client.apiKeys.revoke({ params: { id: second.id } })
        yield* revoked.ends
        expect((yield* refusedEventStream(gateway.api, { key: second.key })).status).toBe(401)

        yield* admin.SuspendCustomer({ id: customerId })
        yield* suspended.ends
        const refused = yield* refusedEventStream(gateway.api, { key })
        expect(refused.problem).toMatchObject({ status: 401, code: "customer_suspended" })
      }).pipe(Effect.scoped)
  )

  it.effect(
    "a stream stuck on a client that stops reading holds a socket's worth, and is cut once its key is revoked",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { client, customerId } = yield* newCustomer(gateway, { name: "Never Reads" })
        const { sql } = yield* eventLogOf(gateway)
        const stuck = yield* client.apiKeys.create({ headers: {}, payload: {} })
        let cut = false
        const socket = yield* Effect.acquireRelease(
          Effect.promise(
            () =>
              new Promise<net.Socket>((resolve) => {
                const url = new URL(gateway.api)
                const socket = net.connect(Number(url.port), url.hostname, () => resolve(socket))
                socket.on("error", () => (cut = true))
                socket.on("close", () => (cut = true))
              })
          ),
          (socket) => Effect.sync(() => socket.destroy())
        )
        socket.write(
          `GET /v1/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${stuck.key}\r\n\r\n`
        )
        yield* waitFor(
          "the stream answers",
          Effect.sync(() => socket.bytesRead),
          (read) => read > 0
        )
        socket.pause()
        // 20 MB of events: far more than a socket and its buffers hold
        const rss = process.memoryUsage().rss
        const ids = Array.from({ length: 10_000 }, () => newId.event())
        yield* sql`
          INSERT INTO events (id, customer_id, channel_id, seq, type, data)
          SELECT id, ${customerId}, NULL, NULL, 'webhook.test', jsonb_build_object('padding', repeat('x', 2000))
          FROM unnest(${ids}::text[]) AS id`
        yield* sql`SELECT pg_notify('whatisup_events', ${customerId})`
        yield* pause(2000)
        expect(process.memoryUsage().rss - rss).toBeLessThan(50_000_000)

        yield* client.apiKeys.revoke({ params: { id: stuck.id } })
        // the client reads nothing: the cut shows when what it writes is refused
        yield* waitFor(
          "the stuck stream's connection is cut",
          Effect.sync(() => {
            if (!cut) socket.write("\r\n")
            return cut
          }),
          (done) => done,
          { attempts: 400 }
        )
      }).pipe(Effect.scoped)
  )

  it.effect("a gateway that stops ends its streams cleanly, without waiting for them", () =>
    Effect.gen(function* () {
      const env = yield* gatewayEnvironment(yield* testDatabase)
      const scope = yield* Scope.make()
      const stopping = yield* startGateway(env).pipe(Scope.provide(scope), Effect.orDie)
      const { key } = yield* newCustomer(stopping, { name: "Left Behind" })
      const stream = yield* openedEventStream(stopping.api, { key })
      yield* Scope.close(scope, Exit.void)
      yield* stream.ends
    }).pipe(Effect.scoped)
  )
})
