import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { newId } from "../src/db/ids.ts"
import { readReceiptBatch } from "../src/messages/drain.ts"
import { newCustomer } from "./support/admin.ts"
import { waitForStatus } from "./support/api.ts"
import { sqlFor } from "./support/database.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { waitUntil } from "./support/waits.ts"

const backlog = 2 * readReceiptBatch + 50

layer(layerTestGateway(), { timeout: 120_000 })("read receipts", (it) => {
  it.effect("a backlog larger than a batch is sent batch after batch, not one batch a sweep", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const sql = yield* sqlFor(gateway.databaseUrl)
      const { client, customerId } = yield* newCustomer(gateway, { name: "Reader" })
      const channel = yield* client.channels.create({ headers: {}, payload: {} })
      yield* client.channels.connect({ params: { id: channel.id }, payload: { method: "qr" } })
      yield* waitUntil(
        "the channel's connection is open",
        Effect.sync(() => gateway.whatsapp.isOpen(channel.id))
      )
      yield* gateway.whatsapp.pair(channel.id, "+15550004444")
      yield* waitForStatus(client, channel.id, "connected")

      // read receipts asked for while nothing woke the drain (written straight to the table, no
      // NOTIFY), and one more asked for through the API, which wakes it once
      const inbound = (readReceipt: string | null) =>
        Effect.gen(function* () {
          const id = newId.message()
          yield* sql`
            INSERT INTO messages (id, customer_id, channel_id, direction, chat, type, content, whatsapp_id, status, read_receipt)
            VALUES (${id}, ${customerId}, ${channel.id}, 'inbound', '15550001111@s.whatsapp.net', 'text',
              '{"body":"hi"}'::jsonb, ${`IN${id}`}, 'received', ${readReceipt})`
          return id
        })
      yield* Effect.forEach(Array.from({ length: backlog }), () => inbound("pending"), { discard: true })
      const last = yield* inbound(null)
      const read = yield* client.messages.read({ params: { id: last } })
      expect(read.status).toBe("read")

      // the sweep that would pick up what one wake left comes every 30 s; two sweeps would be needed
      // for three batches, so a drain that sends one batch a wake cannot be done within this bound
      yield* waitUntil(
        `all ${backlog + 1} read receipts are sent`,
        Effect.map(
          sql<{ n: number }>`
            SELECT count(*)::int AS n FROM messages WHERE channel_id = ${channel.id} AND read_receipt = 'sent'`,
          (rows) => rows[0]!.n === backlog + 1
        ),
        { attempts: 400, everyMillis: 25 }
      )
      const marked = gateway.whatsapp.reads(channel.id).map((key) => key.id)
      expect(new Set(marked).size).toBe(backlog + 1)
      expect(marked.length).toBe(backlog + 1)
    })
  )
})
