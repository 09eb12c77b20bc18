import { type ChannelId, type CustomerId, type Event, EventId, EventType } from "@whatisup/domain"
import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { type EncryptedColumn, KeyRing, placeIn } from "../crypto/keyRing.ts"
import { newId } from "../db/ids.ts"
import { type InvalidCursor, listPage, type Page, type PageRequest } from "../db/pagination.ts"
import { decodeRows } from "../db/transaction.ts"
import { queueDeliveries, type Recipients } from "./deliveries.ts"

/**
 * The NOTIFY channel each event names its customer on, sent in the event's transaction (so heard once
 * it commits); PostgreSQL folds a transaction's identical notifications into one, so a batch of events
 * of one customer wakes its streams once, at no extra round trip.
 */
export const eventsAppendedChannel = "whatisup_events"

export const EventRow = Schema.Struct({
  id: EventId,
  type: EventType,
  data: Schema.Record(Schema.String, Schema.Unknown),
  created_at: Schema.Date
})

export const render = (row: typeof EventRow.Type): Event => ({
  id: row.id,
  type: row.type,
  timestamp: row.created_at.toISOString(),
  data: row.data
})

/**
 * An event's secret part (a `channel.qr` event's QR), kept encrypted beside the event for the webhook
 * that will carry it; the event log never lists it.
 */
export const eventSecretColumn: EncryptedColumn = {
  table: "events",
  key: ["id"],
  column: "secret_ciphertext"
}
export const eventSecretPlace = (id: EventId) => placeIn(eventSecretColumn, [id])

const subscribed: Recipients = { _tag: "Subscribed" }

/**
 * The event log, written in the transaction of the change it reports, with a delivery queued for
 * each webhook endpoint it goes to; each channel numbers its own events (an endpoint's own events,
 * webhook.test and webhook.disabled, belong to no channel and are not numbered).
 */
export class EventLog extends Context.Service<
  EventLog,
  {
    readonly append: (event: {
      readonly customerId: CustomerId
      readonly channelId: ChannelId | null
      readonly type: EventType
      readonly data: Record<string, unknown>
      /** What the event carries that must not be kept or listed in clear. */
      readonly secret?: Record<string, unknown> | undefined
      /** Which webhook endpoints it goes to: by default every one subscribed to it. */
      readonly recipients?: Recipients | undefined
    }) => Effect.Effect<EventId>
    readonly list: (
      options: PageRequest & {
        readonly customerId: CustomerId
        readonly channelId?: ChannelId | undefined
        readonly type?: EventType | undefined
      }
    ) => Effect.Effect<Page<Event>, InvalidCursor>
  }
>()("whatisup/EventLog") {}

export const layerEventLog = Layer.effect(
  EventLog,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const keyRing = yield* KeyRing
    yield* keyRing.register(eventSecretColumn)
    return EventLog.of({
      append: Effect.fn("EventLog.append")(function* ({
        customerId,
        channelId,
        type,
        data,
        secret,
        recipients = subscribed
      }) {
        const id = newId.event()
        const secretCiphertext =
          secret === undefined ? null : keyRing.encrypt(JSON.stringify(secret), eventSecretPlace(id))
        if (channelId === null) {
          yield* sql`
            WITH appended AS (
              INSERT INTO events (id, customer_id, channel_id, seq, type, data)
              VALUES (${id}, ${customerId}, NULL, NULL, ${type}, ${JSON.stringify(data)}::jsonb)
              RETURNING customer_id)
            SELECT pg_notify(${eventsAppendedChannel}, customer_id) FROM appended`
        } else {
          const numbered = yield* sql<{ seq: number }>`
            UPDATE channels SET event_seq = event_seq + 1 WHERE id = ${channelId} RETURNING event_seq::int AS seq`
          const sequence = numbered[0]?.seq ?? 0
          yield* sql`
            WITH appended AS (
              INSERT INTO events (id, customer_id, channel_id, seq, type, data, secret_ciphertext)
              VALUES (${id}, ${customerId}, ${channelId}, ${sequence}, ${type},
                ${JSON.stringify({ channel_id: channelId, sequence, ...data })}::jsonb, ${secretCiphertext})
              RETURNING customer_id)
            SELECT pg_notify(${eventsAppendedChannel}, customer_id) FROM appended`
        }
        yield* queueDeliveries(sql, { id, customerId, channelId, type, recipients })
        return id
      }, Effect.orDie),
      list: Effect.fn("EventLog.list")(function* ({ customerId, channelId, type, ...page }) {
        const rows = yield* listPage(sql, page, "evt", (window) =>
          sql`
            SELECT id, type, data, created_at FROM events
            WHERE customer_id = ${customerId}
              ${channelId === undefined ? sql`` : sql`AND channel_id = ${channelId}`}
              ${type === undefined ? sql`` : sql`AND type = ${type}`}
              ${window}`.pipe(decodeRows(EventRow))
        )
        return { data: rows.data.map(render), next_cursor: rows.next_cursor }
      })
    })
  })
)
