import {
  ChannelId,
  type Message,
  MessageDirection,
  MessageId,
  MessageStatus,
  MessageType
} from "@whatisup/domain"
import { Schema } from "effect"

/** The columns a message is answered from; `channel_phone` is its channel's number, once linked. */
export const messageColumns = `m.id, m.channel_id, m.direction, m.chat, m.type, m.content, m.context_message_id,
  m.context_whatsapp_id, m.whatsapp_id, m.status, m.failure_reason, m.failure_detail, m.created_at,
  m.updated_at, c.phone_number AS channel_phone`

export const MessageRow = Schema.Struct({
  id: MessageId,
  channel_id: ChannelId,
  direction: MessageDirection,
  chat: Schema.String,
  type: MessageType,
  content: Schema.Record(Schema.String, Schema.Unknown),
  context_message_id: Schema.NullOr(MessageId),
  context_whatsapp_id: Schema.NullOr(Schema.String),
  whatsapp_id: Schema.String,
  status: MessageStatus,
  failure_reason: Schema.NullOr(Schema.String),
  failure_detail: Schema.NullOr(Schema.String),
  created_at: Schema.Date,
  updated_at: Schema.Date,
  channel_phone: Schema.NullOr(Schema.String)
})
export type MessageRow = typeof MessageRow.Type

/** A stored message as the API answers it: its content under the field its type names, as the Cloud API does. */
export const renderMessage = (row: MessageRow): Message =>
  ({
    id: row.id,
    channel_id: row.channel_id,
    direction: row.direction,
    from: row.direction === "inbound" ? row.chat : row.channel_phone,
    to: row.direction === "outbound" ? row.chat : row.channel_phone,
    type: row.type,
    [row.type]: row.content,
    context:
      row.context_whatsapp_id === null
        ? null
        : { message_id: row.context_message_id, whatsapp_id: row.context_whatsapp_id },
    whatsapp_id: row.whatsapp_id,
    status: row.status,
    failure:
      row.failure_reason === null ? null : { reason: row.failure_reason, detail: row.failure_detail ?? "" },
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString()
  }) as Message
