import { expect, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { TransportEvent } from "../src/channels/transport.ts"
import { newCustomer } from "./support/admin.ts"
import { waitForStatus } from "./support/api.ts"
import { lockTable, sqlFor } from "./support/database.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { request } from "./support/http.ts"
import { waitFor, waitUntil } from "./support/waits.ts"

layer(layerTestGateway({ WHATISUP_MESSAGE_MAX_AGE: "2s" }), { timeout: 120_000, excludeTestServices: true })(
  "a logout racing the channel's own work",
  (it) => {
    // found by the fuzz test: the ack's store locked the message, then the channel (for the event's
    // sequence number); the logout locked the channel, then the messages it fails: a deadlock, and a 500
    it.effect("a logout while a sent message's ack is being stored: both are done, no 500", () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { client, key } = yield* newCustomer(gateway, { name: "Racing logout" })
        const sql = yield* sqlFor(gateway.databaseUrl)
        const channel = yield* client.channels.create({ headers: {}, payload: { name: "racing" } })
        // WhatsApp takes the message and says nothing until told
        yield* gateway.whatsapp.answerSends(channel.id, () => [])
        yield* client.channels.connect({ params: { id: channel.id }, payload: { method: "qr" } })
        yield* waitUntil(
          `channel ${channel.id} has a connection`,
          Effect.sync(() => gateway.whatsapp.isOpen(channel.id))
        )
        yield* gateway.whatsapp.pair(channel.id, "+15550002222")
        yield* waitForStatus(client, channel.id, "connected")
        const message = yield* client.messages.send({
          params: { id: channel.id },
          headers: {},
          payload: { to: "+15557654321", type: "text", text: { body: "racing" } }
        })
        const [sent] = yield* waitFor(
          "the message went out",
          Effect.sync(() => gateway.whatsapp.sent(channel.id)),
          (sent) => sent.length > 0
        )

        // the history table is held from another connection: the ack's store stops there, its message locked
        const release = yield* Deferred.make<void>()
        const locked = yield* Deferred.make<void>()
        yield* Effect.forkScoped(
          sql
            .withTransaction(
              Effect.gen(function* () {
                yield* sql`LOCK TABLE message_statuses IN SHARE MODE`
                yield* Deferred.succeed(locked, undefined)
                yield* Deferred.await(release)
              })
            )
            .pipe(Effect.orDie)
        )
        yield* Deferred.await(locked)
        const waiting = sql<{ n: number }>`
          SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'`.pipe(
          Effect.map((rows) => rows[0]?.n ?? 0),
          Effect.orDie
        )
        yield* gateway.whatsapp.emit(
          channel.id,
          TransportEvent.ServerAck({ messageId: sent!.id, error: null })
        )
        yield* waitUntil(
          "the ack's store waiting",
          Effect.map(waiting, (n) => n >= 1),
          { attempts: 400 }
        )
        // the logout comes, and waits too
        const logout = yield* Effect.forkScoped(
          request(gateway.api, "POST", `/v1/channels/${channel.id}/logout`, { key })
        )
        yield* waitUntil(
          "the logout waiting",
          Effect.map(waiting, (n) => n >= 2),
          { attempts: 400 }
        )
        yield* Deferred.succeed(release, undefined)

        const answer = yield* Fiber.join(logout)
        expect(answer.status, answer.text).toBe(202)
        expect(answer.body.status).toBe("logged_out")
        // the ack came first: the message was sent, and a logout fails only what is still queued
        const seen = yield* waitFor(
          "the message's ack stored",
          client.messages.get({ params: { id: message.id } }),
          (seen) => seen.status !== "queued"
        )
        expect(seen.status).toBe("sent")
      }).pipe(Effect.scoped)
    )

    // the expiry sweep locked the old messages, then the channel (for the events' sequence numbers); a
    // delete locks the channel, then the messages it fails: the same deadlock as the ack's, and a 500
    it.effect("a delete while the expiry sweep fails the channel's old messages: both are done, no 500", () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { client, key } = yield* newCustomer(gateway, { name: "Racing delete" })
        const sql = yield* sqlFor(gateway.databaseUrl)
        const channel = yield* client.channels.create({ headers: {}, payload: { name: "expiring" } })
        // never connected: the messages wait, and are older than WHATISUP_MESSAGE_MAX_AGE soon
        const messages = yield* Effect.forEach([1, 2, 3], (i) =>
          client.messages.send({
            params: { id: channel.id },
            headers: {},
            payload: { to: "+15557654321", type: "text", text: { body: `old ${i}` } }
          })
        )
        const lock = yield* lockTable(sql, "message_statuses", "SHARE")
        const waiting = sql<{ n: number }>`
          SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'`.pipe(
          Effect.map((rows) => rows[0]?.n ?? 0),
          Effect.orDie
        )
        // the sweep (every 10 s) has locked the messages and waits to write their history
        yield* waitUntil(
          "the expiry sweep waiting",
          Effect.map(waiting, (n) => n >= 1),
          { attempts: 1000, everyMillis: 25 }
        )
        const deleting = yield* Effect.forkScoped(
          request(gateway.api, "DELETE", `/v1/channels/${channel.id}`, { key })
        )
        yield* waitUntil(
          "the delete waiting",
          Effect.map(waiting, (n) => n >= 2),
          { attempts: 400 }
        )
        yield* lock.release

        const answer = yield* Fiber.join(deleting)
        expect(answer.status, answer.text).toBe(200)
        for (const message of messages) {
          const seen = yield* waitFor(
            `message ${message.id} failed`,
            sql<{ status: string; reason: string | null }>`
              SELECT status, failure_reason AS reason FROM messages WHERE id = ${message.id}`.pipe(
              Effect.orDie
            ),
            (rows) => rows[0]?.status === "failed"
          )
          expect(["expired", "channel_deleted"]).toContain(seen[0]!.reason)
        }
      }).pipe(Effect.scoped)
    )
  }
)
