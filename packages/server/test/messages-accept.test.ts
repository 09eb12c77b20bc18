import { expect, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Queue, Schema } from "effect"
import { outboxChannel } from "../src/messages/outboxSignal.ts"
import { newCustomer } from "./support/admin.ts"
import { lockTable, sqlFor } from "./support/database.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { request } from "./support/http.ts"
import { TransportError, TransportEvent } from "../src/channels/transport.ts"
import { Message } from "@whatisup/domain"
import { type ApiClient, waitForQr, waitForStatus } from "./support/api.ts"
import { pause, waitFor, waitUntil } from "./support/waits.ts"

const count = (url: string, query: string) =>
  Effect.gen(function* () {
    const sql = yield* sqlFor(url)
    const rows = yield* sql.unsafe<{ n: number }>(query)
    return rows[0]!.n
  }).pipe(Effect.scoped, Effect.orDie)

/** Waits for the message to leave queued, and finds it failed as its channel was deleted. */
const failsAsDeleted = (client: ApiClient, id: Message["id"]) =>
  Effect.map(
    waitFor(
      "the message failed",
      client.messages.get({ params: { id } }),
      (message) => message.status !== "queued"
    ),
    (failed) => expect(failed.failure?.reason).toBe("channel_deleted")
  )

/**
 * A send's answer as the endpoint's schema writes it: decoded strictly (a field the schema does not
 * declare fails it), then encoded; the answer on the wire must be this text exactly.
 */
const schemaEncoded = (text: string) =>
  JSON.stringify(
    Schema.encodeSync(Message)(
      Schema.decodeUnknownSync(Message, { onExcessProperty: "error" })(JSON.parse(text))
    )
  )

/** How many messages the channel holds, read past the API. */
const storedIn = (gateway: { readonly databaseUrl: string }, channelId: string) =>
  count(gateway.databaseUrl, `SELECT count(*)::int AS n FROM messages WHERE channel_id = '${channelId}'`)

layer(layerTestGateway({ LOG_LEVEL: "warn" }), { timeout: 120_000, excludeTestServices: true })(
  "sending messages: the accept path",
  (it) => {
    it.effect(
      "a send answers 202 queued with its WhatsApp id, and is listed and read back with its history",
      () =>
        Effect.gen(function* () {
          const gateway = yield* TestGateway
          const { client } = yield* newCustomer(gateway)
          const channel = yield* client.channels.create({ headers: {}, payload: {} })
          const sent = yield* client.messages.send({
            params: { id: channel.id },
            headers: {},
            payload: { to: "+15557654321", type: "text", text: { body: "hello\nthere", preview_url: true } }
          })
          expect(sent).toMatchObject({
            channel_id: channel.id,
            direction: "outbound",
            to: "+15557654321",
            from: null,
            type: "text",
            text: { body: "hello\nthere", preview_url: true },
            status: "queued",
            failure: null,
            context: null
          })
          expect(sent.id).toMatch(/^msg_[0-9a-z]{26}$/)
          expect(sent.whatsapp_id).toMatch(/^3EB0[0-9A-F]{20}$/)

          const read = yield* client.messages.get({ params: { id: sent.id } })
          expect(read).toMatchObject({ id: sent.id, status: "queued", whatsapp_id: sent.whatsapp_id })
          expect(read.statuses.map((change) => change.status)).toEqual(["queued"])

          const reply = yield* client.messages.send({
            params: { id: channel.id },
            headers: {},
            payload: {
              to: "+15557654321",
              type: "location",
              location: { latitude: 52.5, longitude: 13.4, name: "Berlin" },
              context: { message_id: sent.id }
            }
          })
          expect(reply.context).toEqual({ message_id: sent.id, whatsapp_id: sent.whatsapp_id })

          const listed = yield* client.messages.list({ params: { id: channel.id }, query: {} })
          expect(listed.data.map((message) => message.id)).toEqual([reply.id, sent.id])
          const filtered = yield* client.messages.list({
            params: { id: channel.id },
            query: { direction: "inbound" }
          })
          expect(filtered.data).toEqual([])
        })
    )

    it.effect(
      "a send's 202 on the wire is the message as stored and as the schema writes it, for every path a send takes",
      () =>
        Effect.gen(function* () {
          const gateway = yield* TestGateway
          const { client, key } = yield* newCustomer(gateway)
          const channel = yield* client.channels.create({ headers: {}, payload: {} })
          const send = (body: unknown, headers: Record<string, string> = {}) =>
            Effect.gen(function* () {
              const reply = yield* request(gateway.api, "POST", `/v1/channels/${channel.id}/messages`, {
                key,
                body,
                headers
              })
              expect(reply.status).toBe(202)
              expect(reply.headers.get("content-type")).toBe("application/json")
              expect(reply.text).toBe(schemaEncoded(reply.text))
              const { statuses, ...stored } = yield* client.messages.get({ params: { id: reply.body.id } })
              expect(statuses.map((change) => change.status)).toEqual(["queued"])
              expect(reply.body).toEqual(stored)
              return reply.body as Message
            })
          // without an Idempotency-Key or a message referenced: the one-statement batch
          const text = yield* send({ to: "+15557654321", type: "text", text: { body: "plain" } })
          yield* send({
            to: "+15557654321",
            type: "location",
            location: { latitude: -33.9, longitude: 18.4 }
          })
          yield* send({
            to: "+15557654321",
            type: "image",
            image: { link: "https://93.184.216.34/cat.jpg", caption: "a cat" }
          })
          // a reply, a reaction and a keyed send: the transaction
          yield* send({
            to: "+15557654321",
            type: "text",
            text: { body: "a reply" },
            context: { message_id: text.id }
          })
          yield* send({
            to: "+15557654321",
            type: "reaction",
            reaction: { message_id: text.id, emoji: "👍" }
          })
          yield* send(
            { to: "+15557654321", type: "text", text: { body: "keyed" } },
            { "idempotency-key": "k-1" }
          )
        })
    )

    it.effect(
      "50 concurrent sends with one Idempotency-Key create one message; the others replay it or are told it is in flight",
      () =>
        Effect.gen(function* () {
          const gateway = yield* TestGateway
          const { client, key } = yield* newCustomer(gateway)
          const channel = yield* client.channels.create({ headers: {}, payload: {} })
          const body = { to: "+15557654321", type: "text", text: { body: "once" } }
          const replies = yield* Effect.all(
            Array.from({ length: 50 }, () =>
              request(gateway.api, "POST", `/v1/channels/${channel.id}/messages`, {
                key,
                body,
                headers: { "idempotency-key": "order-42" }
              })
            ),
            { concurrency: "unbounded" }
          )
          const created = replies.filter((r) => r.status === 202)
          const inFlight = replies.filter((r) => r.status === 409)
          expect(created.length + inFlight.length).toBe(50)
          expect(created.length).toBeGreaterThan(0)
          expect(new Set(created.map((r) => r.body.id)).size).toBe(1)
          for (const r of inFlight) expect(r.body.code).toBe("idempotency_key_in_use")
          expect(yield* storedIn(gateway, channel.id)).toBe(1)

          const again = yield* request(gateway.api, "POST", `/v1/channels/${channel.id}/messages`, {
            key,
            body,
            headers: { "idempotency-key": "order-42" }
          })
          expect(again.status).toBe(202)
          expect(again.body.id).toBe(created[0]!.body.id)
          expect(again.headers.get("idempotent-replayed")).toBe("true")
          // the first answer and its replays are the same text, just what the schema writes
          for (const reply of [...created, again]) {
            expect(reply.headers.get("content-type")).toBe("application/json")
            expect(reply.text).toBe(created[0]!.text)
            expect(reply.text).toBe(schemaEncoded(reply.text))
          }

          const other = yield* request(gateway.api, "POST", `/v1/channels/${channel.id}/messages`, {
            key,
            body: { ...body, text: { body: "twice" } },
            headers: { "idempotency-key": "order-42" }
          })
          expect(other.status).toBe(422)
          expect(other.body.code).toBe("idempotency_key_reused")
        })
    )

    it.effect("bad sends are refused with a 400 naming the field, and nothing is stored", () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { client, key } = yield* newCustomer(gateway)
        const channel = yield* client.channels.create({ headers: {}, payload: {} })
        const path = `/v1/channels/${channel.id}/messages`
        const refused = (body: unknown, field: string) =>
          Effect.gen(function* () {
            const reply = yield* request(gateway.api, "POST", path, { key, body })
            expect(reply.status, JSON.stringify(reply.body)).toBe(400)
            expect(reply.headers.get("content-type")).toContain("application/problem+json")
            expect(
              reply.body.errors.map((e: { path: string }) => e.path),
              JSON.stringify(reply.body)
            ).toContain(field)
          })
        yield* refused({ to: "+15557654321", type: "poll", poll: {} }, "body.type")
        yield* refused({ to: "15557654321", type: "text", text: { body: "hi" } }, "body.to")
        yield* refused(
          { to: "+15557654321", type: "text", text: { body: "x".repeat(4097) } },
          "body.text.body"
        )
        yield* refused({ to: "+15557654321", type: "text", text: { body: "" } }, "body.text.body")
        yield* refused({ to: "+15557654321", type: "text", text: { body: "a\u0000b" } }, "body.text.body")
        yield* refused(
          { to: "+15557654321", type: "location", location: { latitude: 91, longitude: 0 } },
          "body.location.latitude"
        )
        yield* refused(
          { to: "+15557654321", type: "location", location: { latitude: 0, longitude: -180.5 } },
          "body.location.longitude"
        )
        yield* refused(
          {
            to: "+15557654321",
            type: "reaction",
            reaction: { message_id: "msg_01m8mdm3h6z9q2w4e6r8t0y2u4", emoji: "👍" }
          },
          "body.reaction.message_id"
        )
        yield* refused(
          {
            to: "+15557654321",
            type: "text",
            text: { body: "hi" },
            context: { message_id: "msg_01m8mdm3h6z9q2w4e6r8t0y2u4" }
          },
          "body.context.message_id"
        )
        yield* refused(
          { to: "+15557654321", type: "image", image: { link: "http://127.0.0.1/cat.jpg" } },
          "body.image.link"
        )
        yield* refused(
          { to: "+15557654321", type: "document", document: { link: "http://169.254.169.254/latest" } },
          "body.document.link"
        )
        yield* refused({ to: "+15557654321", type: "text", text: { body: "hi" }, extra: 1 }, "body.extra")
        expect(yield* storedIn(gateway, channel.id)).toBe(0)
      })
    )

    it.effect(
      "sends arriving together are each answered for themselves: plain, keyed, replies, and a deleted channel's",
      () =>
        Effect.gen(function* () {
          const gateway = yield* TestGateway
          const { client, key } = yield* newCustomer(gateway)
          const live = yield* client.channels.create({ headers: {}, payload: {} })
          const deleted = yield* client.channels.create({ headers: {}, payload: {} })
          yield* client.channels.delete({ params: { id: deleted.id } })
          const first = yield* client.messages.send({
            params: { id: live.id },
            headers: {},
            payload: { to: "+15557654321", type: "text", text: { body: "first" } }
          })
          const send = (channel: string, body: unknown, headers: Record<string, string> = {}) =>
            request(gateway.api, "POST", `/v1/channels/${channel}/messages`, { key, body, headers })
          const text = (n: number) => ({ to: "+15557654321", type: "text", text: { body: `text ${n}` } })
          const replies = yield* Effect.all(
            [
              ...Array.from({ length: 20 }, (_, n) => send(live.id, text(n))),
              ...Array.from({ length: 10 }, (_, n) => send(deleted.id, text(n))),
              ...Array.from({ length: 5 }, (_, n) =>
                send(live.id, text(100 + n), { "idempotency-key": `together-${n}` })
              ),
              ...Array.from({ length: 5 }, (_, n) =>
                send(live.id, { ...text(200 + n), context: { message_id: first.id } })
              )
            ],
            { concurrency: "unbounded" }
          )
          const plain = replies.slice(0, 20)
          const gone = replies.slice(20, 30)
          const keyed = replies.slice(30, 35)
          const answering = replies.slice(35)
          for (const [n, reply] of plain.entries()) {
            expect(reply.status).toBe(202)
            expect(reply.body).toMatchObject({
              channel_id: live.id,
              status: "queued",
              text: { body: `text ${n}` }
            })
          }
          for (const reply of gone) {
            expect(reply.status).toBe(404)
            expect(reply.body.code).toBe("not_found")
          }
          for (const [n, reply] of keyed.entries()) {
            expect(reply.status).toBe(202)
            expect(reply.body.text).toEqual({ body: `text ${100 + n}` })
          }
          for (const reply of answering) {
            expect(reply.status).toBe(202)
            expect(reply.body.context).toEqual({ message_id: first.id, whatsapp_id: first.whatsapp_id })
          }
          const accepted = [...plain, ...keyed, ...answering].map((reply) => reply.body)
          expect(new Set(accepted.map((message) => message.id)).size).toBe(30)
          for (const message of accepted) {
            const read = yield* client.messages.get({ params: { id: message.id } })
            expect(read).toMatchObject({
              id: message.id,
              whatsapp_id: message.whatsapp_id,
              created_at: message.created_at
            })
            expect(read.statuses.map((change) => change.status)).toEqual(["queued"])
          }
          expect(yield* storedIn(gateway, deleted.id)).toBe(0)
          expect(yield* storedIn(gateway, live.id)).toBe(31)
        })
    )

    it.effect(
      "sends that arrive while the database is busy are written together: 200 in a few transactions, each answered after its own",
      () =>
        Effect.gen(function* () {
          const gateway = yield* TestGateway
          const { key } = yield* newCustomer(gateway, { plan: { api_requests_per_second: 10_000 } })
          const channel = yield* request(gateway.api, "POST", "/v1/channels", { key, body: {} })
          const owner = yield* sqlFor(gateway.databaseUrl)
          // the first batches wait on the lock; the rest gather meanwhile
          const lock = yield* lockTable(owner, "message_statuses", "EXCLUSIVE")
          const sending = yield* Effect.forkScoped(
            Effect.all(
              Array.from({ length: 200 }, (_, n) =>
                request(gateway.api, "POST", `/v1/channels/${channel.body.id}/messages`, {
                  key,
                  body: { to: "+15557654321", type: "text", text: { body: `together ${n}` } }
                })
              ),
              { concurrency: "unbounded" }
            )
          )
          yield* waitUntil(
            "a batch waits on the lock",
            Effect.map(lock.waiting, (n) => n >= 1)
          )
          yield* pause(1000)
          yield* lock.release
          const replies = yield* Fiber.join(sending)
          expect(replies.map((reply) => reply.status)).toEqual(replies.map(() => 202))
          expect(yield* storedIn(gateway, channel.body.id)).toBe(200)
          // a message's created_at is its transaction's start (now()): one per transaction that wrote sends
          const transactions = yield* count(
            gateway.databaseUrl,
            `SELECT count(DISTINCT created_at)::int AS n FROM messages WHERE channel_id = '${channel.body.id}'`
          )
          // one transaction per send would be 200
          expect(transactions).toBeLessThanOrEqual(10)
          // each answer carries its transaction's time (to the millisecond: two may share one)
          expect(new Set(replies.map((reply) => reply.body.created_at)).size).toBeLessThanOrEqual(
            transactions
          )
        })
    )

    it.effect(
      "a committed send wakes its channel's drain in any process (NOTIFY on the outbox channel)",
      () =>
        Effect.gen(function* () {
          const gateway = yield* TestGateway
          const { client } = yield* newCustomer(gateway)
          const channel = yield* client.channels.create({ headers: {}, payload: {} })
          const notifications = yield* (yield* sqlFor(gateway.databaseUrl)).listen(outboxChannel)
          yield* client.messages.send({
            params: { id: channel.id },
            headers: {},
            payload: { to: "+15557654321", type: "text", text: { body: "wake up" } }
          })
          let woken = yield* Queue.take(notifications)
          while (woken.payload !== channel.id) woken = yield* Queue.take(notifications)
          expect(woken.payload).toBe(channel.id)
        }).pipe(Effect.scoped)
    )

    it.effect("another customer's channel, or another channel for a bound key, answers 404", () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const owner = yield* newCustomer(gateway)
        const stranger = yield* newCustomer(gateway)
        const channel = yield* owner.client.channels.create({ headers: {}, payload: {} })
        const other = yield* owner.client.channels.create({ headers: {}, payload: {} })
        const bound = yield* owner.client.apiKeys.create({ headers: {}, payload: { channel_id: other.id } })
        const body = { to: "+15557654321", type: "text", text: { body: "hi" } }
        for (const key of [stranger.key, bound.key]) {
          const reply = yield* request(gateway.api, "POST", `/v1/channels/${channel.id}/messages`, {
            key,
            body
          })
          expect(reply.status).toBe(404)
          expect(reply.body.code).toBe("not_found")
        }
        const mine = yield* owner.client.messages.send({
          params: { id: channel.id },
          headers: {},
          payload: body as never
        })
        for (const key of [stranger.key, bound.key]) {
          const reply = yield* request(gateway.api, "GET", `/v1/messages/${mine.id}`, { key })
          expect(reply.status).toBe(404)
        }
      })
    )

    it.effect(
      "lists filter by direction, status, number and time; a bad filter or cursor is a 400 naming it",
      () =>
        Effect.gen(function* () {
          const gateway = yield* TestGateway
          const { client, key } = yield* newCustomer(gateway)
          const channel = yield* client.channels.create({ headers: {}, payload: {} })
          const send = (to: string) =>
            client.messages.send({
              params: { id: channel.id },
              headers: {},
              payload: { to, type: "text", text: { body: "hi" } }
            })
          const first = yield* send("+15550000001")
          const second = yield* send("+15550000002")
          const list = (query: Record<string, string>) =>
            Effect.map(client.messages.list({ params: { id: channel.id }, query: query as never }), (page) =>
              page.data.map((message) => message.id)
            )
          expect(yield* list({ to: "+15550000001" })).toEqual([first.id])
          expect(yield* list({ status: "queued" })).toEqual([second.id, first.id])
          expect(yield* list({ status: "sent" })).toEqual([])
          expect(yield* list({ from: "+15550000001" })).toEqual([])
          expect(yield* list({ since: second.created_at })).toEqual([second.id])
          expect(yield* list({ until: second.created_at })).toEqual([first.id])
          const paged = yield* client.messages.list({ params: { id: channel.id }, query: { limit: 1 } })
          expect(paged.data.map((message) => message.id)).toEqual([second.id])
          const next = yield* client.messages.list({
            params: { id: channel.id },
            query: { limit: 1, cursor: paged.next_cursor! }
          })
          expect(next.data.map((message) => message.id)).toEqual([first.id])
          for (const [query, field] of [
            ["status=lost", "query.status"],
            ["to=12345", "query.to"],
            ["since=yesterday", "query.since"],
            ["until=2026-02-29T00:00:00Z", "query.until"],
            ["until=0000-01-01T00:00:00Z", "query.until"],
            ["cursor=bm9wZQ", "query.cursor"]
          ] as const) {
            const reply = yield* request(gateway.api, "GET", `/v1/channels/${channel.id}/messages?${query}`, {
              key
            })
            expect(reply.status, query).toBe(400)
            expect(
              reply.body.errors.map((e: { path: string }) => e.path),
              query
            ).toContain(field)
          }
        })
    )

    it.effect(
      "deleting a channel fails its queued messages as channel_deleted, each posted as message.failed",
      () =>
        Effect.gen(function* () {
          const gateway = yield* TestGateway
          const { client, key } = yield* newCustomer(gateway)
          const channel = yield* client.channels.create({ headers: {}, payload: {} })
          const sent = yield* client.messages.send({
            params: { id: channel.id },
            headers: {},
            payload: { to: "+15557654321", type: "text", text: { body: "never sent" } }
          })
          const keyedBody = { to: "+15557654321", type: "text", text: { body: "keyed, never sent" } }
          const keyedFirst = yield* request(gateway.api, "POST", `/v1/channels/${channel.id}/messages`, {
            key,
            headers: { "idempotency-key": "before-delete" },
            body: keyedBody
          })
          expect(keyedFirst.status).toBe(202)
          yield* client.channels.delete({ params: { id: channel.id } })
          const failed = yield* client.messages.get({ params: { id: sent.id } })
          expect(failed).toMatchObject({ status: "failed", failure: { reason: "channel_deleted" } })
          expect(failed.statuses.map((change) => change.status)).toEqual(["queued", "failed"])
          const events = yield* client.events.list({ query: { type: "message.failed" } })
          expect(events.data.map((event) => event.data["message_id"]).sort()).toEqual(
            [sent.id, keyedFirst.body.id].sort()
          )
          for (const event of events.data) {
            expect(event.data["failure"]).toMatchObject({ reason: "channel_deleted" })
          }
          const gone = yield* request(gateway.api, "POST", `/v1/channels/${channel.id}/messages`, {
            key,
            body: { to: "+15557654321", type: "text", text: { body: "too late" } }
          })
          expect(gone.status).toBe(404)
          // a retry of a send accepted before the delete gets its first answer, as any replay does
          const replayed = yield* request(gateway.api, "POST", `/v1/channels/${channel.id}/messages`, {
            key,
            headers: { "idempotency-key": "before-delete" },
            body: keyedBody
          })
          expect(replayed.status).toBe(202)
          expect(replayed.headers.get("idempotent-replayed")).toBe("true")
          expect(replayed.text).toBe(keyedFirst.text)
          // the same key with another body is still refused
          const reused = yield* request(gateway.api, "POST", `/v1/channels/${channel.id}/messages`, {
            key,
            headers: { "idempotency-key": "before-delete" },
            body: { ...keyedBody, text: { body: "another body" } }
          })
          expect(reused.status).toBe(422)
        })
    )

    it.effect(
      "logging a channel out fails its queued messages as channel_logged_out; a logged-out channel takes no sends until it is connected again",
      () =>
        Effect.gen(function* () {
          const gateway = yield* TestGateway
          const { client, key } = yield* newCustomer(gateway, { plan: { messages_per_minute: 100_000 } })
          const channel = yield* client.channels.create({ headers: {}, payload: {} })
          yield* client.channels.connect({ params: { id: channel.id }, payload: { method: "qr" } })
          yield* waitForQr(client, channel.id)
          expect(yield* gateway.whatsapp.pair(channel.id, "+15550007778")).toBe(true)
          yield* waitForStatus(client, channel.id, "connected")
          // WhatsApp takes nothing: the messages stay queued
          yield* gateway.whatsapp.answerSends(
            channel.id,
            () => new TransportError({ reason: "socket write failed", retryable: true })
          )
          const text = (body: string) => ({ to: "+15557654321", type: "text", text: { body } }) as const
          const queued = yield* client.messages.send({
            params: { id: channel.id },
            headers: {},
            payload: text("queued at the logout")
          })
          const keyedBody = text("keyed, before the logout")
          const keyedFirst = yield* request(gateway.api, "POST", `/v1/channels/${channel.id}/messages`, {
            key,
            headers: { "idempotency-key": "before-logout" },
            body: keyedBody
          })
          expect(keyedFirst.status).toBe(202)
          yield* client.channels.logout({ params: { id: channel.id } })
          yield* waitForStatus(client, channel.id, "logged_out")
          const failed = yield* waitFor(
            "the queued message failed",
            client.messages.get({ params: { id: queued.id } }),
            (message) => message.status !== "queued"
          )
          expect(failed).toMatchObject({ status: "failed", failure: { reason: "channel_logged_out" } })
          const events = yield* client.events.list({ query: { type: "message.failed" } })
          expect(events.data.map((event) => event.data["message_id"]).sort()).toEqual(
            [queued.id, keyedFirst.body.id].sort()
          )
          // a retry of a send accepted before the logout gets its first answer, as any replay does
          const replayed = yield* request(gateway.api, "POST", `/v1/channels/${channel.id}/messages`, {
            key,
            headers: { "idempotency-key": "before-logout" },
            body: keyedBody
          })
          expect(replayed.status).toBe(202)
          expect(replayed.headers.get("idempotent-replayed")).toBe("true")
          expect(replayed.text).toBe(keyedFirst.text)

          // refused whichever way the send is written: plain, with an Idempotency-Key, as a reply
          const stored = yield* storedIn(gateway, channel.id)
          for (const [headers, body] of [
            [{}, text("after the logout")],
            [{ "idempotency-key": "after-logout" }, text("after the logout, keyed")],
            [{}, { ...text("a reply after the logout"), context: { message_id: queued.id } }]
          ] as const) {
            const refused = yield* request(gateway.api, "POST", `/v1/channels/${channel.id}/messages`, {
              key,
              headers,
              body
            })
            expect(refused.status, JSON.stringify(headers)).toBe(409)
            expect(refused.body).toMatchObject({ code: "invalid_state", current_status: "logged_out" })
            expect(refused.body.detail).toContain(`/v1/channels/${channel.id}/connect`)
          }
          expect(yield* storedIn(gateway, channel.id)).toBe(stored)
          // another customer's key finds no such channel, logged out or not
          const other = yield* newCustomer(gateway)
          const hidden = yield* request(gateway.api, "POST", `/v1/channels/${channel.id}/messages`, {
            key: other.key,
            body: text("not yours")
          })
          expect(hidden.status).toBe(404)

          // connected again (pairing), it takes sends
          yield* client.channels.connect({ params: { id: channel.id }, payload: { method: "qr" } })
          const again = yield* client.messages.send({
            params: { id: channel.id },
            headers: {},
            payload: text("to the phone linked next")
          })
          expect(again.status).toBe("queued")
        }),
      60_000
    )

    /**
     * A send whose insert waits on a lock (message_statuses held in EXCLUSIVE mode by the test) while its
     * channel is deleted; answers the send's reply once the lock is released and the delete is done.
     */
    const sendWhileDeleting = (payload: Record<string, unknown>, headers: Record<string, string>) =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { client, key } = yield* newCustomer(gateway)
        const channel = yield* client.channels.create({ headers: {}, payload: {} })
        const owner = yield* sqlFor(gateway.databaseUrl)
        const waitingOnLocks = owner<{ n: number }>`
          SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()
            AND datname = current_database()`.pipe(
          Effect.map((rows) => rows[0]!.n),
          Effect.orDie
        )
        const lock = yield* lockTable(owner, "message_statuses", "EXCLUSIVE")
        const sending = yield* Effect.forkScoped(
          request(gateway.api, "POST", `/v1/channels/${channel.id}/messages`, { key, body: payload, headers })
        )
        yield* waitUntil(
          "the send waits on the lock",
          Effect.map(waitingOnLocks, (n) => n === 1)
        )
        const deleted = yield* Deferred.make<void>()
        const deleting = yield* Effect.forkScoped(
          Effect.tap(client.channels.delete({ params: { id: channel.id } }), () =>
            Deferred.succeed(deleted, undefined)
          )
        )
        yield* waitUntil(
          "the delete done, or waiting for the send",
          Effect.zipWith(Deferred.isDone(deleted), waitingOnLocks, (done, n) => done || n === 2)
        )
        yield* lock.release
        const reply = yield* Fiber.join(sending)
        yield* Fiber.join(deleting)
        return { gateway, client, channel, reply }
      })

    it.effect(
      "a send accepted while its channel is being deleted fails channel_deleted, not left queued",
      () =>
        Effect.gen(function* () {
          // with an Idempotency-Key the send is a transaction that reads (and share-locks) the channel before its insert waits
          const { client, reply } = yield* sendWhileDeleting(
            { to: "+15557654321", type: "text", text: { body: "while it goes" } },
            { "idempotency-key": "while-it-goes" }
          )
          expect(reply.status).toBe(202)
          yield* failsAsDeleted(client, reply.body.id)
        })
    )

    it.effect(
      "a common send waiting while its channel is deleted is refused 404, and nothing is stored",
      () =>
        Effect.gen(function* () {
          // one statement: it takes its table locks first, so the delete goes through and the channel is found deleted
          const { gateway, channel, reply } = yield* sendWhileDeleting(
            { to: "+15557654321", type: "text", text: { body: "while it goes" } },
            {}
          )
          expect(reply.status).toBe(404)
          expect(reply.body.code).toBe("not_found")
          expect(yield* storedIn(gateway, channel.id)).toBe(0)
        })
    )

    /**
     * A common send whose statement pauses at `pauseAt` (a statement trigger waiting on an advisory lock the
     * test holds) while its channel is deleted: whether the delete had to wait for it, and its reply.
     */
    const sendPausedWhileDeleting = (
      pauseAt: "BEFORE INSERT ON messages" | "AFTER INSERT ON message_statuses"
    ) =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { client, key } = yield* newCustomer(gateway)
        const channel = yield* client.channels.create({ headers: {}, payload: {} })
        const owner = yield* sqlFor(gateway.databaseUrl)
        const waitingOnLocks = owner<{ n: number }>`
          SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()
            AND datname = current_database()`.pipe(
          Effect.map((rows) => rows[0]!.n),
          Effect.orDie
        )
        yield* Effect.acquireRelease(
          Effect.andThen(
            owner`CREATE FUNCTION pause_sends() RETURNS trigger LANGUAGE plpgsql AS $$
              BEGIN PERFORM pg_advisory_xact_lock_shared(4711); RETURN NULL; END $$`,
            owner.unsafe(
              `CREATE TRIGGER pause_sends ${pauseAt} FOR EACH STATEMENT EXECUTE FUNCTION pause_sends()`
            )
          ).pipe(Effect.orDie),
          () =>
            Effect.andThen(
              owner.unsafe(`DROP TRIGGER pause_sends ON ${pauseAt.split(" ON ")[1]}`),
              owner`DROP FUNCTION pause_sends()`
            ).pipe(Effect.orDie)
        )
        const locked = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        yield* Effect.forkScoped(
          owner
            .withTransaction(
              Effect.gen(function* () {
                yield* owner`SELECT pg_advisory_xact_lock(4711)`
                yield* Deferred.succeed(locked, undefined)
                yield* Deferred.await(release)
              })
            )
            .pipe(Effect.orDie)
        )
        yield* Deferred.await(locked)
        const sending = yield* Effect.forkScoped(
          request(gateway.api, "POST", `/v1/channels/${channel.id}/messages`, {
            key,
            body: { to: "+15557654321", type: "text", text: { body: "while it goes" } }
          })
        )
        yield* waitUntil(
          "the send waits on the advisory lock",
          Effect.map(waitingOnLocks, (n) => n === 1)
        )
        const deleted = yield* Deferred.make<void>()
        const deleting = yield* Effect.forkScoped(
          Effect.tap(client.channels.delete({ params: { id: channel.id } }), () =>
            Deferred.succeed(deleted, undefined)
          )
        )
        yield* waitUntil(
          "the delete done, or waiting for the send",
          Effect.zipWith(Deferred.isDone(deleted), waitingOnLocks, (done, n) => done || n === 2)
        )
        const deleteWaited = !(yield* Deferred.isDone(deleted))
        yield* Deferred.succeed(release, undefined)
        const reply = yield* Fiber.join(sending)
        yield* Fiber.join(deleting)
        return { gateway, client, channel, reply, deleteWaited }
      })

    it.effect(
      "a common send that has read its channel holds the channel's deletion until it commits, then fails channel_deleted",
      () =>
        Effect.gen(function* () {
          const { client, reply, deleteWaited } = yield* sendPausedWhileDeleting(
            "AFTER INSERT ON message_statuses"
          )
          expect(deleteWaited).toBe(true)
          expect(reply.status).toBe(202)
          yield* failsAsDeleted(client, reply.body.id)
        })
    )

    it.effect(
      "a common send whose statement began before its channel was deleted reads the channel again when it locks it: refused 404, nothing left queued",
      () =>
        Effect.gen(function* () {
          const { gateway, channel, reply } = yield* sendPausedWhileDeleting("BEFORE INSERT ON messages")
          expect(reply.status).toBe(404)
          expect(yield* storedIn(gateway, channel.id)).toBe(0)
        })
    )

    it.effect(
      "a list filter naming a moment PostgreSQL cannot take (31 February, an offset of +23:59) is refused with a 400, not a failed query",
      () =>
        Effect.gen(function* () {
          const gateway = yield* TestGateway
          const { client, key } = yield* newCustomer(gateway)
          const channel = yield* client.channels.create({ headers: {}, payload: {} })
          for (const query of [
            "since=2026-02-31T10:00:00Z",
            "until=0000-01-01T00:00:00Z",
            "since=2026-01-01T10:00:00%2B23:59"
          ]) {
            const reply = yield* request(gateway.api, "GET", `/v1/channels/${channel.id}/messages?${query}`, {
              key
            })
            expect(reply.status, query).toBe(400)
          }
        })
    )

    it.effect(
      "a message WhatsApp does not take for a while is tried again first, before those after it",
      () =>
        Effect.gen(function* () {
          const gateway = yield* TestGateway
          const { client } = yield* newCustomer(gateway, { plan: { messages_per_minute: 100_000 } })
          const channel = yield* client.channels.create({ headers: {}, payload: {} })
          yield* client.channels.connect({ params: { id: channel.id }, payload: { method: "qr" } })
          yield* waitForQr(client, channel.id)
          expect(yield* gateway.whatsapp.pair(channel.id, "+15550007777")).toBe(true)
          yield* waitForStatus(client, channel.id, "connected")
          let refusing = true
          yield* gateway.whatsapp.answerSends(channel.id, (message) =>
            refusing
              ? new TransportError({ reason: "socket write failed", retryable: true })
              : [TransportEvent.ServerAck({ messageId: message.id, error: null })]
          )
          const send = (body: string) =>
            client.messages.send({
              params: { id: channel.id },
              headers: {},
              payload: { to: "+15557654321", type: "text", text: { body } }
            })
          const first = yield* send("one")
          const second = yield* send("two")
          const third = yield* send("three")
          // more than one round of attempts fails
          yield* waitUntil(
            "the first message tried more than one round",
            Effect.sync(
              () => gateway.whatsapp.sent(channel.id).filter((m) => m.id === first.whatsapp_id).length > 6
            ),
            { attempts: 600, everyMillis: 50 }
          )
          expect(gateway.whatsapp.sent(channel.id).every((m) => m.id === first.whatsapp_id)).toBe(true)
          refusing = false
          const sentOf = (id: Message["id"]) =>
            waitFor(`${id} sent`, client.messages.get({ params: { id } }), (m) => m.status === "sent", {
              attempts: 600,
              everyMillis: 50
            })
          for (const message of [first, second, third]) yield* sentOf(message.id)
          const order = gateway.whatsapp
            .sent(channel.id)
            .map((m) => m.id)
            .filter((id, i, all) => all.indexOf(id) === i)
          expect(order).toEqual([first.whatsapp_id, second.whatsapp_id, third.whatsapp_id])
        }),
      60_000
    )
  }
)
