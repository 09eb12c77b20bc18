import { type Event, type EventType, type InvalidRequest } from "@whatisup/domain"
import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { decodeCursor, defaultPageSize, toPage } from "../db/pagination.ts"
import { newId } from "../db/ids.ts"

interface EventRow {
  readonly id: string
  readonly type: EventType
  readonly data: Record<string, unknown>
  readonly created_at: Date
}

const render = (row: EventRow): Event => ({
  id: row.id as Event["id"],
  type: row.type,
  timestamp: row.created_at.toISOString(),
  data: row.data
})

/** The channel event log, written in the transaction of the change it reports; each channel numbers its own events. */
export class EventLog extends Context.Service<
  EventLog,
  {
    readonly append: (event: {
      readonly customerId: string
      readonly channelId: string
      readonly type: EventType
      readonly data: Record<string, unknown>
    }) => Effect.Effect<void>
    readonly list: (options: {
      readonly customerId: string
      readonly channelId?: string | undefined
      readonly type?: EventType | undefined
      readonly limit?: number | undefined
      readonly cursor?: string | undefined
    }) => Effect.Effect<{ data: Array<Event>; next_cursor: string | null }, InvalidRequest>
  }
>()("whatisup/EventLog") {}

export const layerEventLog = Layer.effect(
  EventLog,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    return EventLog.of({
      append: ({ customerId, channelId, type, data }) =>
        Effect.gen(function* () {
          const numbered = yield* sql<{ seq: number }>`
            UPDATE channels SET event_seq = event_seq + 1 WHERE id = ${channelId} RETURNING event_seq::int AS seq`
          const sequence = numbered[0]?.seq ?? 0
          yield* sql`
            INSERT INTO events (id, customer_id, channel_id, seq, type, data)
            VALUES (${newId("event")}, ${customerId}, ${channelId}, ${sequence}, ${type},
              ${JSON.stringify({ channel_id: channelId, sequence, ...data })}::jsonb)`
        }).pipe(Effect.orDie),
      list: ({ customerId, channelId, type, limit = defaultPageSize, cursor }) =>
        Effect.gen(function* () {
          const after = yield* decodeCursor(cursor, "evt")
          const rows = yield* sql<EventRow>`
            SELECT id, type, data, created_at FROM events
            WHERE customer_id = ${customerId}
              ${channelId === undefined ? sql`` : sql`AND channel_id = ${channelId}`}
              ${type === undefined ? sql`` : sql`AND type = ${type}`}
              ${after === null ? sql`` : sql`AND id < ${after}`}
            ORDER BY id DESC LIMIT ${limit + 1}`.pipe(Effect.orDie)
          return toPage(rows, limit, render)
        })
    })
  })
)
