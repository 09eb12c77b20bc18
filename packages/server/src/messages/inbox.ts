import type { ChannelId } from "@whatisup/domain"
import { Context, Deferred, Effect, Exit, Layer, Metric, Queue } from "effect"
import { SqlClient } from "effect/sql"
import type { InboundMessage } from "../channels/transport.ts"
import { newId } from "../db/ids.ts"
import { transaction } from "../db/transaction.ts"
import { EventLog, type NewEvent } from "../events/eventLog.ts"
import { describeInbound } from "../whatsapp/inboundContent.ts"
import { renderMessage } from "./rows.ts"

const received = Metric.counter("messages_received_total", {
  description: "Inbound messages stored, by type (a duplicate WhatsApp delivered again is not counted)"
})

/** How many arrivals one transaction takes at most. */
const maxBatch = 200

/**
 * What a sender wrote, storable: PostgreSQL refuses NUL in text and JSON, and one message it refused
 * would never be acknowledged, come again at every login and be refused again. NUL becomes U+FFFD.
 */
const storable = <A>(value: A): A =>
  JSON.parse(
    JSON.stringify(value, (_key, each: unknown) =>
      typeof each === "string" ? each.replaceAll("\u0000", "\ufffd") : each
    )
  ) as A

interface Arrival {
  readonly channelId: ChannelId
  readonly messages: ReadonlyArray<InboundMessage>
  readonly stored: Deferred.Deferred<void>
}

/**
 * Where inbound messages are stored before WhatsApp is told they arrived: written in batches (the
 * arrivals of every channel that come together share a transaction), idempotent on the channel and
 * the WhatsApp id (a message WhatsApp delivers again is stored once and announced once), and not
 * fenced: whichever connection received it, it is the channel's. Each new message is posted as
 * `message.received` in the transaction that stores it.
 */
export class Inbox extends Context.Service<
  Inbox,
  { readonly store: (channelId: ChannelId, messages: ReadonlyArray<InboundMessage>) => Effect.Effect<void> }
>()("whatisup/Inbox") {}

export const layerInbox = Layer.effect(
  Inbox,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const events = yield* EventLog
    const inTransaction = transaction(sql)
    const queue = yield* Queue.unbounded<Arrival>()

    const write = (arrivals: ReadonlyArray<Arrival>) =>
      Effect.gen(function* () {
        const channelIds = [...new Set(arrivals.map((arrival) => arrival.channelId))]
        // the channels first, in id order, as every writer that locks several takes them: each event
        // appended below updates its channel's row, and in arrival order a batch of several channels
        // deadlocked with a batch of sends to the same channels
        const channels = new Map(
          (yield* sql<{ id: string; customer_id: string; phone_number: string | null }>`
            SELECT id, customer_id, phone_number FROM channels WHERE id IN ${sql.in(channelIds)}
            ORDER BY id FOR NO KEY UPDATE`).map((row) => [row.id, row])
        )
        const described = arrivals.flatMap((arrival) =>
          channels.has(arrival.channelId)
            ? arrival.messages.map((message) => ({
                channelId: arrival.channelId,
                message,
                content: storable(describeInbound(message.content).message)
              }))
            : []
        )
        if (described.length === 0) return
        // what the messages quote or react to, by WhatsApp id, within their channel
        const referencedIds = described.flatMap(({ channelId, content }) =>
          [
            content.context?.whatsapp_id,
            content.type === "reaction" ? content.reaction.message_id : undefined
          ]
            .filter((id): id is string => id !== undefined && id !== null)
            .map((id) => ({ c: channelId, w: id }))
        )
        const referenced = new Map(
          referencedIds.length === 0
            ? []
            : (yield* sql<{ channel_id: string; whatsapp_id: string; id: string }>`
                SELECT m.channel_id, m.whatsapp_id, m.id
                FROM json_to_recordset(${JSON.stringify(referencedIds)}::json) AS r(c text, w text)
                JOIN messages m ON m.channel_id = r.c AND m.whatsapp_id = r.w`).map((row) => [
                `${row.channel_id} ${row.whatsapp_id}`,
                row.id
              ])
        )
        const idOf = (channelId: string, whatsappId: string | null | undefined) =>
          whatsappId === undefined || whatsappId === null
            ? null
            : (referenced.get(`${channelId} ${whatsappId}`) ?? null)
        const rows = described.map(({ channelId, message, content }) => {
          const { type, context } = content
          const body = (content as unknown as Record<string, Record<string, unknown>>)[type] ?? {}
          return {
            id: newId.message(),
            customer_id: channels.get(channelId)!.customer_id,
            channel_id: channelId,
            chat: message.from,
            type,
            content:
              type === "reaction"
                ? {
                    ...body,
                    message_id: idOf(channelId, body.message_id as string),
                    whatsapp_id: body.message_id
                  }
                : body,
            context_message_id: idOf(channelId, context?.whatsapp_id),
            context_whatsapp_id: context?.whatsapp_id ?? null,
            whatsapp_id: storable(message.whatsappId),
            wa_content: Buffer.from(message.content).toString("base64"),
            created_at: message.timestamp.toISOString()
          }
        })
        const inserted = yield* sql<{ id: string; created_at: Date; updated_at: Date }>`
          WITH r AS (
            SELECT * FROM json_to_recordset(${JSON.stringify(rows)}::json) AS r(id text, customer_id text,
              channel_id text, chat text, type text, content jsonb, context_message_id text,
              context_whatsapp_id text, whatsapp_id text, wa_content text, created_at timestamptz)
          ), m AS (
            INSERT INTO messages (id, customer_id, channel_id, direction, chat, type, content,
              context_message_id, context_whatsapp_id, whatsapp_id, status, wa_content, created_at, updated_at)
            SELECT id, customer_id, channel_id, 'inbound', chat, type, content, context_message_id,
              context_whatsapp_id, whatsapp_id, 'received', decode(wa_content, 'base64'), least(created_at, now()), now()
            FROM r
            ON CONFLICT (channel_id, whatsapp_id) DO NOTHING
            RETURNING id, created_at, updated_at
          ), s AS (
            INSERT INTO message_statuses (message_id, status, at) SELECT id, 'received', created_at FROM m
          )
          SELECT id, created_at, updated_at FROM m`
        const stored = new Map(inserted.map((row) => [row.id, row]))
        const appended: Array<NewEvent> = []
        for (const row of rows) {
          const kept = stored.get(row.id)
          if (kept === undefined) continue
          const channel = channels.get(row.channel_id)!
          const message = renderMessage({
            id: row.id as never,
            channel_id: row.channel_id as never,
            direction: "inbound",
            chat: row.chat,
            type: row.type as never,
            content: row.content,
            context_message_id: row.context_message_id as never,
            context_whatsapp_id: row.context_whatsapp_id,
            whatsapp_id: row.whatsapp_id,
            status: "received",
            failure_reason: null,
            failure_detail: null,
            created_at: kept.created_at,
            updated_at: kept.updated_at,
            channel_phone: channel.phone_number
          })
          const { channel_id: _channel, ...data } = message
          appended.push({
            customerId: channel.customer_id as never,
            channelId: row.channel_id as never,
            type: "message.received",
            data: { message_id: message.id, ...data }
          })
          yield* Metric.update(Metric.withAttributes(received, { type: row.type }), 1)
        }
        yield* events.appendAll(appended)
      })

    const settle = (arrivals: ReadonlyArray<Arrival>) =>
      Effect.gen(function* () {
        const result = yield* Effect.exit(inTransaction(write(arrivals)))
        if (Exit.isFailure(result)) {
          yield* Effect.logWarning("inbound messages not stored; WhatsApp delivers them again", result.cause)
        }
        for (const arrival of arrivals) yield* Deferred.done(arrival.stored, result)
      })

    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.takeBetween(queue, 1, maxBatch), settle)))

    return Inbox.of({
      store: (channelId, messages) =>
        messages.length === 0
          ? Effect.void
          : Effect.gen(function* () {
              const stored = yield* Deferred.make<void>()
              Queue.offerUnsafe(queue, { channelId, messages, stored })
              return yield* Deferred.await(stored)
            })
    })
  })
)
