import { type ChannelId, type CustomerId, type Event, EventId, EventType } from "@whatisup/domain"
import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { type EncryptedColumn, KeyRing, placeIn } from "../crypto/keyRing.ts"
import { newId } from "../db/ids.ts"
import { type InvalidCursor, listPage, type Page, type PageRequest } from "../db/pagination.ts"
import { decodeRows } from "../db/transaction.ts"

const EventRow = Schema.Struct({
  id: EventId,
  type: EventType,
  data: Schema.Record(Schema.String, Schema.Unknown),
  created_at: Schema.Date
})

const render = (row: typeof EventRow.Type): Event => ({
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

/** The channel event log, written in the transaction of the change it reports; each channel numbers its own events. */
export class EventLog extends Context.Service<
  EventLog,
  {
    readonly append: (event: {
      readonly customerId: CustomerId
      readonly channelId: ChannelId
      readonly type: EventType
      readonly data: Record<string, unknown>
      /** What the event carries that must not be kept or listed in clear. */
      readonly secret?: Record<string, unknown> | undefined
    }) => Effect.Effect<void>
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
      append: Effect.fn("EventLog.append")(function* ({ customerId, channelId, type, data, secret }) {
        const numbered = yield* sql<{ seq: number }>`
          UPDATE channels SET event_seq = event_seq + 1 WHERE id = ${channelId} RETURNING event_seq::int AS seq`
        const sequence = numbered[0]?.seq ?? 0
        const id = newId.event()
        const secretCiphertext =
          secret === undefined ? null : keyRing.encrypt(JSON.stringify(secret), eventSecretPlace(id))
        yield* sql`
          INSERT INTO events (id, customer_id, channel_id, seq, type, data, secret_ciphertext)
          VALUES (${id}, ${customerId}, ${channelId}, ${sequence}, ${type},
            ${JSON.stringify({ channel_id: channelId, sequence, ...data })}::jsonb, ${secretCiphertext})`
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
