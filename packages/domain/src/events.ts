import { Schema } from "effect"
import { ChannelId, EventId } from "./ids.ts"
import { Timestamp } from "./time.ts"

export const ChannelEventType = Schema.Literals([
  "channel.qr",
  "channel.connected",
  "channel.disconnected",
  "channel.logged_out",
  "channel.failed"
]).annotate({
  description:
    "channel.qr (a new QR code to scan), channel.connected, channel.disconnected (with code and reason), channel.logged_out, channel.failed (with reason)"
})

export const WebhookEventType = Schema.Literals(["webhook.test", "webhook.disabled"]).annotate({
  description:
    "webhook.test (sent to one endpoint by POST /v1/webhooks/{id}/test), webhook.disabled (to the customer's other endpoints when the gateway disables one)"
})

export const MessageEventType = Schema.Literals([
  "message.received",
  "message.sent",
  "message.delivered",
  "message.read",
  "message.failed"
]).annotate({
  description:
    "message.received (an inbound message, stored before the event), message.sent (WhatsApp's server took it), message.delivered, message.read (read, or played for a voice note: see status), message.failed (with failure)"
})

export const EventType = Schema.Literals([
  ...MessageEventType.literals,
  ...ChannelEventType.literals,
  ...WebhookEventType.literals
]).annotate({
  description:
    "message.received (an inbound message), message.sent, message.delivered, message.read (or played: see data.status), message.failed (with data.failure), channel.qr (a new QR code to scan), channel.connected, channel.disconnected (with code and reason), channel.logged_out, channel.failed (with reason), webhook.test (POST /v1/webhooks/{id}/test), webhook.disabled (an endpoint was disabled by the gateway)"
})
export type EventType = typeof EventType.Type

/**
 * One entry of the event log; `data` carries the channel id and its per-channel sequence number. A
 * `channel.qr` event lists `{channel_id, sequence, expires_at}` and never the QR: its fourth field is
 * the device's adv secret key, so the QR is kept encrypted and read with `GET /v1/channels/{id}/qr`
 * while it is valid (a webhook will carry it too).
 */
export const Event = Schema.Struct({
  id: EventId,
  type: EventType.annotate({ examples: ["channel.connected"] }),
  timestamp: Timestamp("When it happened"),
  data: Schema.Record(Schema.String, Schema.Unknown).annotate({
    description:
      "channel_id, sequence and what the event reports; a channel.qr event lists expires_at, never the QR itself (it holds the device's adv secret key: read it from GET /v1/channels/{id}/qr while it is valid)",
    examples: [{ channel_id: "ch_01m8mdm38wdvrz8hr11e5wqsdm", sequence: 2, phone_number: "+15551234567" }]
  })
}).annotate({ description: "One entry of a channel's event log" })
export type Event = typeof Event.Type

export const EventQuery = {
  channel_id: Schema.optionalKey(ChannelId.annotate({ description: "Only this channel's events" })),
  type: Schema.optionalKey(EventType.annotate({ description: "Only events of this type" }))
}

/** How many `GET /v1/events/stream` connections one API key may hold open at once (in each gateway process). */
export const maxEventStreamsPerKey = 5

/** The reconnection delay a stream suggests to EventSource (`retry:`), in milliseconds. */
export const eventStreamRetryMillis = 5000

/** A stream with nothing to carry sends a comment this often, so that proxies keep it open. */
export const eventStreamKeepAliveSeconds = 15

export const LastEventId = Schema.String.pipe(
  Schema.check(
    Schema.isPattern(/^(evt_[0-9a-z]{26}|[0-9]{1,15})$/u, {
      message: "must be the id of an event this stream sent (evt_...), or with channel_id a sequence number"
    })
  )
).annotate({
  description:
    "Resume just after this event: the id (evt_...) of the last event received, as EventSource sends it when it reconnects; the stream then carries every event after it, none twice and none missed, when resumed with the channel_id it was opened with (a channel's stream and the customer's come in different orders). With channel_id (or a key bound to a channel), a channel's sequence number (data.sequence) is taken too, 0 for all of the channel's events. An id the stream cannot have sent (unknown, another channel's, another customer's) or a sequence number the channel has not reached is a 400 naming header.last-event-id. Without it the stream starts with the events that happen from now on.",
  examples: ["evt_01m8mdm3a1s2x7k9e4q6w8r0tb"]
})

/** One frame of the event stream, as text/event-stream carries it. */
export const EventStreamFrames = Schema.String.annotate({
  description: `Server-Sent Events (text/event-stream). First \`retry: ${eventStreamRetryMillis}\`, then one frame per event, in order: \`id: evt_...\`, \`event:\` the event's type, \`data:\` the event as GET /v1/events lists it ({id, type, timestamp, data}, on one line), then a blank line. A line starting with a colon (\`: keep-alive\`, every ${eventStreamKeepAliveSeconds} s while nothing happens) is a comment, to be ignored.`,
  examples: [
    `retry: ${eventStreamRetryMillis}\n\nid: evt_01m8mdm3a1s2x7k9e4q6w8r0tb\nevent: channel.connected\ndata: {"id":"evt_01m8mdm3a1s2x7k9e4q6w8r0tb","type":"channel.connected","timestamp":"2026-05-04T10:15:30.000Z","data":{"channel_id":"ch_01m8mdm38wdvrz8hr11e5wqsdm","sequence":3,"phone_number":"+15551234567"}}\n\n: keep-alive\n\n`
  ]
})
