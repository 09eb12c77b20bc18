import { Schema } from "effect"
import { ChannelId, EventId } from "./ids.ts"

export const ChannelEventType = Schema.Literals([
  "channel.qr",
  "channel.connected",
  "channel.disconnected",
  "channel.logged_out",
  "channel.failed"
])

export const EventType = ChannelEventType
export type EventType = typeof EventType.Type

/** One entry of the event log; `data` carries the channel id and its per-channel sequence number. */
export const Event = Schema.Struct({
  id: EventId,
  type: EventType,
  timestamp: Schema.String,
  data: Schema.Record(Schema.String, Schema.Unknown)
})
export type Event = typeof Event.Type

export const EventQuery = {
  channel_id: Schema.optionalKey(ChannelId),
  type: Schema.optionalKey(EventType)
}
