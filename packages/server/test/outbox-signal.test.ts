import { expect, layer } from "@effect/vitest"
import { Context, Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import { GatewayConfigService } from "../src/config/config.ts"
import { newId } from "../src/db/ids.ts"
import { layerOutboxSignal, OutboxSignal, outboxSweepInterval } from "../src/messages/outboxSignal.ts"
import { newCustomer } from "./support/admin.ts"
import { layerSqlFor, sqlFor } from "./support/database.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"

const nodeId = "sweep-test-node"

layer(layerTestGateway(), { timeout: 60_000 })("the outbox's sweep", (it) => {
  it.effect(
    "wakes the drains of this node's channels with messages queued or read receipts pending, and no other, with no notification sent",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const sql = yield* sqlFor(gateway.databaseUrl)
        const { client, customerId } = yield* newCustomer(gateway, { name: "Sweep" })
        const create = client.channels.create({ headers: {}, payload: {} })
        const [queued, receipt, idle, elsewhere, probe] = [
          yield* create,
          yield* create,
          yield* create,
          yield* create,
          yield* create
        ]

        yield* sql`
          INSERT INTO gateway_nodes (node_id, expires_at)
          VALUES (${nodeId}, now() + interval '1 hour'), ('another-node', now() + interval '1 hour')`
        for (const [channel, owner] of [
          [queued, nodeId],
          [receipt, nodeId],
          [idle, nodeId],
          [elsewhere, "another-node"]
        ] as const) {
          yield* sql`INSERT INTO channel_leases (channel_id, owner, generation) VALUES (${channel.id}, ${owner}, 1)`
        }

        const services = yield* Layer.build(
          layerOutboxSignal.pipe(
            Layer.provide(layerSqlFor(gateway.databaseUrl)),
            Layer.provide(Layer.succeed(GatewayConfigService, { ...gateway.config, nodeId }))
          )
        )
        const signal = Context.get(services, OutboxSignal)
        const [queuedWoken, receiptWoken, idleWoken, elsewhereWoken] = [
          yield* signal.watch(queued.id),
          yield* signal.watch(receipt.id),
          yield* signal.watch(idle.id),
          yield* signal.watch(elsewhere.id)
        ]
        // once it listens, it wakes every drain (for what was queued meanwhile): notified until it
        // hears, so that those wakes are behind the test
        const probing = yield* signal.watch(probe.id)
        yield* probing
        const heard = yield* Effect.forkChild(probing)
        yield* sql`SELECT pg_notify('whatisup_outbox', ${probe.id})`.pipe(
          Effect.repeat({ until: () => heard.pollUnsafe() !== undefined })
        )
        // a watch starts awake (the drain looks once as it starts), then sleeps until woken
        const asleep = (woken: Effect.Effect<void>) => Effect.andThen(woken, Effect.forkChild(woken))
        const queuedFiber = yield* asleep(queuedWoken)
        const receiptFiber = yield* asleep(receiptWoken)
        const idleFiber = yield* asleep(idleWoken)
        const elsewhereFiber = yield* asleep(elsewhereWoken)

        // written straight to the table: no NOTIFY, as if the notification was lost
        const message = (
          channelId: string,
          direction: "outbound" | "inbound",
          status: string,
          readReceipt: string | null
        ) =>
          sql`
            INSERT INTO messages (id, customer_id, channel_id, direction, chat, type, content, whatsapp_id, status, read_receipt)
            VALUES (${newId.message()}, ${customerId}, ${channelId}, ${direction}, '15550001111@s.whatsapp.net',
              'text', '{"body":"hi"}'::jsonb, ${newId.message()}, ${status}, ${readReceipt})`
        yield* message(queued.id, "outbound", "queued", null)
        yield* message(receipt.id, "inbound", "received", "pending")
        yield* message(idle.id, "outbound", "sent", null)
        yield* message(idle.id, "inbound", "received", "sent")
        yield* message(elsewhere.id, "outbound", "queued", null)

        yield* TestClock.adjust(outboxSweepInterval)
        // each returns once the sweep woke it: a sweep that never does fails the test at its timeout
        yield* Fiber.join(queuedFiber)
        yield* Fiber.join(receiptFiber)
        yield* Effect.yieldNow
        expect(idleFiber.pollUnsafe()).toBeUndefined()
        expect(elsewhereFiber.pollUnsafe()).toBeUndefined()
      })
  )
})
