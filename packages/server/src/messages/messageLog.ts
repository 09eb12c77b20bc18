import {
  type ChannelId,
  type CustomerId,
  type Message,
  type MessageDirection,
  type MessageId,
  type MessageStatus,
  type MessageWithHistory,
  StatusChange
} from "@whatisup/domain"
import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { ChannelNotFound } from "../channels/errors.ts"
import { type InvalidCursor, listPage, type Page, type PageRequest } from "../db/pagination.ts"
import { decodeRows, transaction } from "../db/transaction.ts"
import { EventLog } from "../events/eventLog.ts"
import { MessageNotFound, MessageStateConflict } from "./errors.ts"
import { outboxChannel } from "./outboxSignal.ts"
import { messageColumns, MessageRow, renderMessage } from "./rows.ts"
import { applyTransitions, type TransitionTarget, transitionColumns } from "./transitions.ts"

/** Whose messages a caller sees: its customer's, or one channel's for a key bound to it. */
export interface MessageAccess {
  readonly customerId: CustomerId
  readonly onlyChannel: ChannelId | null
}

export interface MessageFilter extends PageRequest {
  readonly direction?: MessageDirection | undefined
  readonly status?: MessageStatus | undefined
  readonly to?: string | undefined
  readonly from?: string | undefined
  readonly since?: string | undefined
  readonly until?: string | undefined
}

/** The order of statuses that share a moment (a receipt that implied the steps before it). */
const statusOrder = ["queued", "received", "sent", "delivered", "read", "played", "failed"]

const HistoryRow = Schema.Struct({
  status: StatusChange.fields.status,
  at: Schema.Date,
  reason: Schema.NullOr(Schema.String)
})

/** The WhatsApp message an inbound message arrived as, for its media. */
export interface StoredInbound {
  readonly message: Message
  readonly content: Uint8Array
}

/** Messages as customers read them, and the one change they make to an inbound one: reading it. */
export class MessageLog extends Context.Service<
  MessageLog,
  {
    readonly list: (
      access: MessageAccess,
      channelId: ChannelId,
      filter: MessageFilter
    ) => Effect.Effect<Page<Message>, ChannelNotFound | InvalidCursor>
    readonly get: (access: MessageAccess, id: MessageId) => Effect.Effect<MessageWithHistory, MessageNotFound>
    /** An inbound message with the WhatsApp message it arrived as. */
    readonly inbound: (
      access: MessageAccess,
      id: MessageId
    ) => Effect.Effect<StoredInbound, MessageNotFound | MessageStateConflict>
    /** A channel's messages for the operator, newest first; undefined when there is no such channel. */
    readonly listForOperator: (
      channelId: ChannelId,
      filter: Pick<MessageFilter, "direction" | "status"> & { readonly limit: number }
    ) => Effect.Effect<ReadonlyArray<Message> | undefined>
    /** Marks an inbound message read; its channel's actor sends the read receipt. */
    readonly markRead: (
      access: MessageAccess,
      id: MessageId
    ) => Effect.Effect<Message, MessageNotFound | MessageStateConflict>
  }
>()("whatisup/MessageLog") {}

export const layerMessageLog = Layer.effect(
  MessageLog,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const events = yield* EventLog
    const inTransaction = transaction(sql)
    const visible = (access: MessageAccess) =>
      sql`m.customer_id = ${access.customerId} ${
        access.onlyChannel === null ? sql`` : sql`AND m.channel_id = ${access.onlyChannel}`
      }`

    const load = (access: MessageAccess, id: MessageId) =>
      sql`
        SELECT ${sql.unsafe(messageColumns)} FROM messages m JOIN channels c ON c.id = m.channel_id
        WHERE m.id = ${id} AND ${visible(access)}`.pipe(
        decodeRows(MessageRow),
        Effect.flatMap((rows) =>
          rows[0] === undefined
            ? Effect.fail(new MessageNotFound({ messageId: id }))
            : Effect.succeed(rows[0])
        )
      )

    return MessageLog.of({
      list: Effect.fn("MessageLog.list")(function* (access, channelId, filter) {
        const channel = yield* sql`
          SELECT 1 FROM channels WHERE id = ${channelId} AND customer_id = ${access.customerId}
            AND status <> 'deleted' ${access.onlyChannel === null ? sql`` : sql`AND id = ${access.onlyChannel}`}`.pipe(
          Effect.orDie
        )
        if (channel.length === 0) return yield* new ChannelNotFound({ channelId })
        // the page's window names a bare id: it applies to the messages alone, the channel is joined after
        const page = yield* listPage(sql, filter, "msg", (window) =>
          sql`
            SELECT ${sql.unsafe(messageColumns)} FROM messages m JOIN channels c ON c.id = m.channel_id
            WHERE m.id IN (
              SELECT id FROM messages
              WHERE channel_id = ${channelId} AND customer_id = ${access.customerId}
                ${filter.direction === undefined ? sql`` : sql`AND direction = ${filter.direction}`}
                ${filter.status === undefined ? sql`` : sql`AND status = ${filter.status}`}
                ${filter.to === undefined ? sql`` : sql`AND direction = 'outbound' AND chat = ${filter.to}`}
                ${filter.from === undefined ? sql`` : sql`AND direction = 'inbound' AND chat = ${filter.from}`}
                ${filter.since === undefined ? sql`` : sql`AND created_at >= ${filter.since}::timestamptz`}
                ${filter.until === undefined ? sql`` : sql`AND created_at < ${filter.until}::timestamptz`}
                ${window}
            )
            ORDER BY m.id DESC`.pipe(decodeRows(MessageRow))
        )
        return { data: page.data.map(renderMessage), next_cursor: page.next_cursor }
      }),

      listForOperator: Effect.fn("MessageLog.listForOperator")(function* (channelId, filter) {
        const channel = yield* sql`SELECT 1 FROM channels WHERE id = ${channelId}`.pipe(Effect.orDie)
        if (channel.length === 0) return undefined
        const rows = yield* sql`
          SELECT ${sql.unsafe(messageColumns)} FROM messages m JOIN channels c ON c.id = m.channel_id
          WHERE m.channel_id = ${channelId}
            ${filter.direction === undefined ? sql`` : sql`AND m.direction = ${filter.direction}`}
            ${filter.status === undefined ? sql`` : sql`AND m.status = ${filter.status}`}
          ORDER BY m.id DESC LIMIT ${filter.limit}`.pipe(decodeRows(MessageRow))
        return rows.map(renderMessage)
      }),

      get: Effect.fn("MessageLog.get")(function* (access, id) {
        const row = yield* load(access, id)
        const history = yield* sql`
          SELECT status, at, reason FROM message_statuses WHERE message_id = ${id}
          ORDER BY at, array_position(${statusOrder}::text[], status)`.pipe(decodeRows(HistoryRow))
        return {
          ...renderMessage(row),
          statuses: history.map((change) => ({
            status: change.status,
            at: change.at.toISOString(),
            reason: change.reason
          }))
        }
      }),

      inbound: Effect.fn("MessageLog.inbound")(function* (access, id) {
        const row = yield* load(access, id)
        if (row.direction !== "inbound") {
          return yield* new MessageStateConflict({
            status: row.status,
            detail: "Only inbound messages have media to download: an outbound message's file is at its link"
          })
        }
        const content = yield* sql<{ wa_content: Uint8Array | null }>`
          SELECT wa_content FROM messages WHERE id = ${id}`.pipe(Effect.orDie)
        return { message: renderMessage(row), content: content[0]?.wa_content ?? new Uint8Array() }
      }),

      markRead: Effect.fn("MessageLog.markRead")(function* (access, id) {
        const row = yield* load(access, id)
        if (row.direction !== "inbound") {
          return yield* new MessageStateConflict({
            status: row.status,
            detail:
              "Only inbound messages can be marked read; an outbound message reaches read when its recipient reads it"
          })
        }
        yield* inTransaction(
          Effect.gen(function* () {
            const targets = yield* sql<TransitionTarget>`
              SELECT ${sql.unsafe(transitionColumns)} FROM messages WHERE id = ${id} FOR UPDATE`
            const made = yield* applyTransitions(sql, events, targets, [{ id, status: "read" }])
            if (made.length > 0) {
              yield* sql`UPDATE messages SET read_receipt = 'pending' WHERE id = ${id}`
              yield* sql`SELECT pg_notify(${outboxChannel}, ${row.channel_id})`
            }
          }).pipe(Effect.orDie)
        )
        return renderMessage(yield* load(access, id))
      })
    })
  })
)
