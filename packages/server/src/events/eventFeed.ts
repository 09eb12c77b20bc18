import type { ChannelId, CustomerId, Event, EventType } from "@whatisup/domain"
import { Data, Effect, Schema } from "effect"
import type { SqlClient } from "effect/sql"
import { decodeRows } from "../db/transaction.ts"
import { EventRow, render } from "./eventLog.ts"

/**
 * Which events a stream carries. A channel's events are read in `seq` order: each channel numbers
 * its events under the channel row's lock, held until commit, so a committed sequence number means
 * every lower one has committed too. A customer's events, across channels, are read in the order of
 * the transactions that wrote them, and only below the oldest transaction still running.
 */
export type Feed =
  | {
      readonly _tag: "Customer"
      readonly customerId: CustomerId
      readonly type: EventType | undefined
    }
  | {
      readonly _tag: "Channel"
      readonly customerId: CustomerId
      readonly channelId: ChannelId
      readonly type: EventType | undefined
    }
  /** A channel the key may not see: as `GET /v1/events` lists nothing for it, the stream carries nothing. */
  | { readonly _tag: "Nothing" }

/** Where a stream stands: what it has carried so far. */
export type Position =
  | { readonly _tag: "Sequence"; readonly seq: number }
  | {
      readonly _tag: "Transaction"
      /** The writing transaction's id (`xid8`, as text) and the event's id, of the last event carried. */
      readonly txid: string
      readonly id: string
      /** Events past the position that had committed before the stream opened: not carried. */
      readonly before: ReadonlySet<string>
    }
  | { readonly _tag: "Nowhere" }

/** Why a `Last-Event-ID` cannot say where to resume. */
export class LastEventIdRefused extends Data.TaggedError("LastEventIdRefused")<{
  readonly reason: "unknown_event" | "sequence_needs_channel" | "sequence_ahead"
}> {}

const eventIdPattern = /^evt_[0-9a-z]{26}$/
const sequencePattern = /^[0-9]{1,15}$/

const Sequence = Schema.Struct({ seq: Schema.Number })
const Start = Schema.Struct({ xmin: Schema.String, before: Schema.Array(Schema.String) })
const Txid = Schema.Struct({ txid: Schema.String })
const SequencedRow = Schema.Struct({ ...EventRow.fields, seq: Schema.Number })
// the xid8 as text, named apart from the column so that ORDER BY sorts the xid8, not its text
const TransactionRow = Schema.Struct({
  ...EventRow.fields,
  txid_text: Schema.String,
  settled: Schema.Boolean
})

export interface Batch {
  readonly events: ReadonlyArray<Event>
  readonly position: Position
  /** Whether the batch may have stopped short of what is there to read. */
  readonly full: boolean
  /**
   * Whether events have committed past the position that cannot be carried yet, because an older
   * transaction is still running (it may still add events before them): worth looking again soon.
   */
  readonly waiting: boolean
}

export const makeEventFeed = (sql: SqlClient.SqlClient, batchSize: number) => {
  // the type is filtered after reading, so that the position moves past the events a stream does not
  // carry: filtered in the query, a rare type would read every later event again at each look
  const carried = (type: EventType | undefined) => (row: { readonly type: EventType }) =>
    type === undefined || row.type === type

  const lastSequence = (customerId: CustomerId, channelId: ChannelId) =>
    sql`
      SELECT coalesce(max(seq), 0)::int AS seq FROM events
      WHERE channel_id = ${channelId} AND customer_id = ${customerId}`.pipe(
      decodeRows(Sequence),
      Effect.map((rows) => rows[0]?.seq ?? 0)
    )

  /** Where a stream that resumes from nothing starts: after every event committed so far. */
  const now = (feed: Feed): Effect.Effect<Position> => {
    switch (feed._tag) {
      case "Nothing":
        return Effect.succeed({ _tag: "Nowhere" })
      case "Channel":
        return Effect.map(lastSequence(feed.customerId, feed.channelId), (seq) => ({ _tag: "Sequence", seq }))
      case "Customer":
        // every transaction below xmin has ended; of those at or above it, some have committed already
        return sql`
          SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin,
            ARRAY(SELECT id FROM events WHERE customer_id = ${feed.customerId}
              AND txid >= pg_snapshot_xmin(pg_current_snapshot())) AS before`.pipe(
          decodeRows(Start),
          Effect.map(([start]) => ({
            _tag: "Transaction",
            txid: start!.xmin,
            id: "",
            before: new Set(start!.before)
          }))
        )
    }
  }

  /** Where a stream resumes: just after the event `Last-Event-ID` names, or a channel's sequence number. */
  const after = (feed: Feed, lastEventId: string): Effect.Effect<Position, LastEventIdRefused> =>
    Effect.gen(function* () {
      const unknown = new LastEventIdRefused({ reason: "unknown_event" })
      if (feed._tag === "Nothing") return yield* unknown
      if (sequencePattern.test(lastEventId)) {
        if (feed._tag !== "Channel")
          return yield* new LastEventIdRefused({ reason: "sequence_needs_channel" })
        const seq = Number(lastEventId)
        if (seq > (yield* lastSequence(feed.customerId, feed.channelId))) {
          return yield* new LastEventIdRefused({ reason: "sequence_ahead" })
        }
        return { _tag: "Sequence", seq } as const
      }
      if (!eventIdPattern.test(lastEventId)) return yield* unknown
      if (feed._tag === "Channel") {
        const [row] = yield* sql`
          SELECT seq::int AS seq FROM events
          WHERE id = ${lastEventId} AND customer_id = ${feed.customerId} AND channel_id = ${feed.channelId}`.pipe(
          decodeRows(Sequence)
        )
        if (row === undefined) return yield* unknown
        return { _tag: "Sequence", seq: row.seq } as const
      }
      const [row] = yield* sql`
        SELECT txid::text AS txid FROM events WHERE id = ${lastEventId} AND customer_id = ${feed.customerId}`.pipe(
        decodeRows(Txid)
      )
      if (row === undefined) return yield* unknown
      return { _tag: "Transaction", txid: row.txid, id: lastEventId, before: new Set<string>() } as const
    })

  /** The next events past `position`, in the feed's order, at most `batchSize`. */
  const next = (feed: Feed, position: Position): Effect.Effect<Batch> =>
    Effect.gen(function* () {
      if (feed._tag === "Nothing" || position._tag === "Nowhere") {
        return { events: [], position, full: false, waiting: false }
      }
      if (feed._tag === "Channel" && position._tag === "Sequence") {
        const rows = yield* sql`
          SELECT id, type, data, created_at, seq::int AS seq FROM events
          WHERE channel_id = ${feed.channelId} AND customer_id = ${feed.customerId} AND seq > ${position.seq}
          ORDER BY seq LIMIT ${batchSize}`.pipe(decodeRows(SequencedRow))
        const last = rows.at(-1)
        return {
          events: rows.filter(carried(feed.type)).map(render),
          position: last === undefined ? position : { _tag: "Sequence", seq: last.seq },
          full: rows.length === batchSize,
          waiting: false
        }
      }
      if (feed._tag === "Customer" && position._tag === "Transaction") {
        // settled: written by a transaction older than every one still running
        const rows = yield* sql`
          SELECT id, type, data, created_at, txid::text AS txid_text,
            txid < pg_snapshot_xmin(pg_current_snapshot()) AS settled
          FROM events
          WHERE customer_id = ${feed.customerId} AND (txid, id) > (${position.txid}::xid8, ${position.id})
          ORDER BY events.txid, events.id LIMIT ${batchSize}`.pipe(decodeRows(TransactionRow))
        const settled = rows.filter((row) => row.settled)
        const last = settled.at(-1)
        return {
          events: settled
            .filter((row) => !position.before.has(row.id))
            .filter(carried(feed.type))
            .map(render),
          position:
            last === undefined
              ? position
              : { _tag: "Transaction", txid: last.txid_text, id: last.id, before: position.before },
          full: rows.length === batchSize && settled.length === rows.length,
          waiting: settled.length < rows.length
        }
      }
      return yield* Effect.die(new Error(`a ${feed._tag} feed cannot read from a ${position._tag} position`))
    })

  return { now, after, next }
}

export type EventFeed = ReturnType<typeof makeEventFeed>
