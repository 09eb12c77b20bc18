import { expect, layer } from "@effect/vitest"
import type { ChannelId, CustomerId } from "@whatisup/domain"
import { Effect } from "effect"
import type { NewEvent } from "../src/events/eventLog.ts"
import { newCustomer } from "./support/admin.ts"
import { eventLogOf } from "./support/eventStream.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { startReceiver } from "./support/receiver.ts"

/** The gateway's event log on a connection of the test's own, so that it runs in the test's transactions. */
const eventLog = Effect.flatMap(TestGateway, eventLogOf)

layer(layerTestGateway({ WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32" }), { timeout: 60_000 })(
  "the event log appends a batch together",
  (it) => {
    it.effect(
      "a batch of several channels' events: each channel numbers its own in the order given, from where its counter was, and each goes to the endpoints that listen to it",
      () =>
        Effect.gen(function* () {
          const { log, sql } = yield* eventLog
          const { client, customerId } = yield* newCustomer(yield* TestGateway, { name: "Batch" })
          const receiver = yield* startReceiver()
          const [a, b] = [
            yield* client.channels.create({ headers: {}, payload: {} }),
            yield* client.channels.create({ headers: {}, payload: {} })
          ]
          const everything = yield* client.webhooks.create({ headers: {}, payload: { url: receiver.url } })
          const sentOfA = yield* client.webhooks.createForChannel({
            params: { id: a.id },
            headers: {},
            payload: { url: receiver.url, event_types: ["message.sent"] }
          })
          const ofB = yield* client.webhooks.createForChannel({
            params: { id: b.id },
            headers: {},
            payload: { url: receiver.url }
          })
          yield* client.webhooks.create({ headers: {}, payload: { url: receiver.url, enabled: false } })
          // an earlier event of a, appended alone: the batch numbers on from it
          yield* log.append({ customerId, channelId: a.id, type: "message.read", data: {} })
          const counters = new Map(
            (yield* sql<{ id: string; event_seq: number }>`
              SELECT id, event_seq::int FROM channels WHERE id IN (${a.id}, ${b.id})`).map((row) => [
              row.id,
              row.event_seq
            ])
          )

          const batch: ReadonlyArray<NewEvent> = [
            { customerId, channelId: a.id, type: "message.sent", data: { n: 1 } },
            { customerId, channelId: b.id, type: "message.received", data: { n: 2 } },
            { customerId, channelId: a.id, type: "message.delivered", data: { n: 3 } },
            { customerId, channelId: null, type: "message.sent", data: { n: 4 } },
            { customerId, channelId: a.id, type: "message.sent", data: { n: 5 } }
          ]
          const ids = yield* sql.withTransaction(
            Effect.gen(function* () {
              yield* sql`SELECT 1 FROM channels WHERE id IN (${a.id}, ${b.id}) ORDER BY id FOR NO KEY UPDATE`
              return yield* log.appendAll(batch)
            })
          )
          expect(ids).toHaveLength(batch.length)
          expect(new Set(ids).size).toBe(batch.length)

          const stored = yield* sql<{
            id: string
            channel_id: string | null
            seq: number | null
            type: string
            data: Record<string, unknown>
          }>`SELECT id, channel_id, seq::int, type, data FROM events WHERE id IN ${sql.in([...ids])}`
          const byId = new Map(stored.map((row) => [row.id, row]))
          const a0 = counters.get(a.id)!
          const b0 = counters.get(b.id)!
          expect(ids.map((id) => byId.get(id)!.seq)).toEqual([a0 + 1, b0 + 1, a0 + 2, null, a0 + 3])
          expect(ids.map((id) => byId.get(id)!.data)).toEqual([
            { channel_id: a.id, sequence: a0 + 1, n: 1 },
            { channel_id: b.id, sequence: b0 + 1, n: 2 },
            { channel_id: a.id, sequence: a0 + 2, n: 3 },
            { n: 4 },
            { channel_id: a.id, sequence: a0 + 3, n: 5 }
          ])
          const after = yield* sql<{ id: string; event_seq: number }>`
            SELECT id, event_seq::int FROM channels WHERE id IN (${a.id}, ${b.id})`
          expect(new Map(after.map((row) => [row.id, row.event_seq]))).toEqual(
            new Map([
              [a.id, a0 + 3],
              [b.id, b0 + 1]
            ])
          )

          const deliveries = yield* sql<{ event_id: string; endpoint_id: string }>`
            SELECT event_id, endpoint_id FROM deliveries WHERE event_id IN ${sql.in([...ids])}`
          const heard = (i: number) =>
            deliveries
              .filter((delivery) => delivery.event_id === ids[i])
              .map((delivery) => delivery.endpoint_id)
              .sort()
          expect(heard(0)).toEqual([everything.id, sentOfA.id].sort())
          expect(heard(1)).toEqual([everything.id, ofB.id].sort())
          expect(heard(2)).toEqual([everything.id])
          // an event of no channel goes to every endpoint subscribed to its type, channel-bound or not
          expect(heard(3)).toEqual([everything.id, sentOfA.id, ofB.id].sort())
          expect(heard(4)).toEqual([everything.id, sentOfA.id].sort())
        })
    )

    it.effect("an empty batch appends nothing; another customer's endpoints never hear of a batch", () =>
      Effect.gen(function* () {
        const { log, sql } = yield* eventLog
        const gateway = yield* TestGateway
        const receiver = yield* startReceiver()
        const mine = yield* newCustomer(gateway, { name: "Mine" })
        const theirs = yield* newCustomer(gateway, { name: "Theirs" })
        yield* theirs.client.webhooks.create({ headers: {}, payload: { url: receiver.url } })
        const channel = yield* mine.client.channels.create({ headers: {}, payload: {} })
        expect(yield* log.appendAll([])).toEqual([])
        const ids = yield* log.appendAll([
          {
            customerId: mine.customerId as CustomerId,
            channelId: channel.id as ChannelId,
            type: "message.sent",
            data: {}
          }
        ])
        const [counted] = yield* sql<{ deliveries: number }>`
          SELECT count(*)::int AS deliveries FROM deliveries WHERE event_id IN ${sql.in([...ids])}`
        expect(counted!.deliveries).toBe(0)
      })
    )
  }
)
