import { type ChannelId, type CustomerId, type Event, EventId, EventType } from "@whatisup/domain"
import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { type EncryptedColumn, KeyRing, placeIn } from "../crypto/keyRing.ts"
import { newId } from "../db/ids.ts"
import { type InvalidCursor, listPage, type Page, type PageRequest } from "../db/pagination.ts"
import { decodeRows } from "../db/transaction.ts"
import { type ListeningEndpoint, queueDeliveries, type Recipients } from "./deliveries.ts"

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

/** An event to append. */
export interface NewEvent {
  readonly customerId: CustomerId
  readonly channelId: ChannelId | null
  readonly type: EventType
  readonly data: Record<string, unknown>
  /** What the event carries that must not be kept or listed in clear. */
  readonly secret?: Record<string, unknown> | undefined
  /** Which webhook endpoints it goes to: by default every one subscribed to it. */
  readonly recipients?: Recipients | undefined
}

/**
 * The event log, written in the transaction of the change it reports, with a delivery queued for
 * each webhook endpoint it goes to; each channel numbers its own events (an endpoint's own events,
 * webhook.test and webhook.disabled, belong to no channel and are not numbered).
 */
export class EventLog extends Context.Service<
  EventLog,
  {
    /** Appends one event (see `appendAll`). */
    readonly append: (event: NewEvent) => Effect.Effect<EventId>
    /**
     * Appends events in the caller's transaction, in the order given (a channel's events are numbered
     * in it), with their deliveries: a few statements for the whole batch. A caller appending events of
     * several channels holds their rows locked already, taken in id order as every writer takes them.
     */
    readonly appendAll: (events: ReadonlyArray<NewEvent>) => Effect.Effect<ReadonlyArray<EventId>>
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

    const appendAll = Effect.fn("EventLog.appendAll")(function* (events: ReadonlyArray<NewEvent>) {
      if (events.length === 0) return []
      const appended = events.map((event, i) => {
        const id = newId.event()
        return {
          i,
          id,
          customer_id: event.customerId,
          channel_id: event.channelId,
          type: event.type,
          data: event.data,
          secret:
            event.secret === undefined
              ? null
              : keyRing.encrypt(JSON.stringify(event.secret), eventSecretPlace(id))
        }
      })
      // each channel's counter moved once by its events' count, and they numbered from it in order (a
      // channel whose row is gone numbers them 0); every customer's streams woken; and the endpoints
      // that may hear of them read in the same round trip
      const listening = yield* sql<ListeningEndpoint | { readonly id: null }>`
        WITH input AS (
          SELECT * FROM json_to_recordset(${JSON.stringify(appended)}::json)
            AS e(i int, id text, customer_id text, channel_id text, type text, data jsonb, secret text)
        ), counts AS (
          SELECT channel_id, count(*) AS n FROM input WHERE channel_id IS NOT NULL GROUP BY channel_id
        ), numbered AS (
          UPDATE channels c SET event_seq = c.event_seq + counts.n FROM counts WHERE c.id = counts.channel_id
          RETURNING c.id, c.event_seq - counts.n AS base
        ), sequenced AS (
          SELECT e.*, CASE
              WHEN e.channel_id IS NULL THEN NULL
              ELSE coalesce(n.base + row_number() OVER (PARTITION BY e.channel_id ORDER BY e.i), 0)
            END AS seq
          FROM input e LEFT JOIN numbered n ON n.id = e.channel_id
        ), inserted AS (
          INSERT INTO events (id, customer_id, channel_id, seq, type, data, secret_ciphertext)
          SELECT id, customer_id, channel_id, seq, type,
            CASE WHEN channel_id IS NULL THEN data
              ELSE jsonb_build_object('channel_id', channel_id, 'sequence', seq) || data END,
            secret
          FROM sequenced
          RETURNING customer_id
        ), woken AS (
          SELECT pg_notify(${eventsAppendedChannel}, customer_id) FROM (SELECT DISTINCT customer_id FROM inserted) c
        )
        -- one row at least, so that the notifications are sent whether an endpoint listens or not
        SELECT w.id, w.customer_id, w.channel_id, w.event_types
        FROM (SELECT count(*) FROM woken) AS notified
        LEFT JOIN webhook_endpoints w ON w.customer_id IN (SELECT customer_id FROM input)
          AND w.deleted_at IS NULL AND w.enabled`
      yield* queueDeliveries(
        sql,
        events.map((event, i) => ({
          id: appended[i]!.id,
          customerId: event.customerId,
          channelId: event.channelId,
          type: event.type,
          recipients: event.recipients ?? subscribed
        })),
        listening.filter((endpoint): endpoint is ListeningEndpoint => endpoint.id !== null)
      )
      return appended.map((event) => event.id)
    }, Effect.orDie)

    return EventLog.of({
      append: (event) => Effect.map(appendAll([event]), (ids) => ids[0]!),
      appendAll,
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
