import { Schema } from "effect"

/** `prefix_` and 26 lowercase letters or digits; documented with what it names and an example. */
const prefixedId = (prefix: string, names: string, example: string) =>
  Schema.String.pipe(
    Schema.check(
      // the u flag lets the pattern reach /openapi.json
      Schema.isPattern(new RegExp(`^${prefix}_[0-9a-z]{26}$`, "u"), {
        message: `must be an id of the form ${prefix}_ followed by 26 lowercase letters or digits`
      })
    )
  ).annotate({
    description: `${names}: ${prefix}_ followed by 26 lowercase letters or digits, sortable by creation time`,
    examples: [example]
  })

export const CustomerId = prefixedId("cus", "A customer's id", "cus_01m8ajcypr49de2469htbgq0r4").pipe(
  Schema.brand("CustomerId")
)
export type CustomerId = typeof CustomerId.Type

export const ApiKeyId = prefixedId("key", "An API key's id", "key_01m8ajcypxyd95pttxvh1rmaqs").pipe(
  Schema.brand("ApiKeyId")
)
export type ApiKeyId = typeof ApiKeyId.Type

export const ChannelId = prefixedId("ch", "A channel's id", "ch_01m8mdm38wdvrz8hr11e5wqsdm").pipe(
  Schema.brand("ChannelId")
)
export type ChannelId = typeof ChannelId.Type

export const EventId = prefixedId("evt", "An event's id", "evt_01m8mdm3a1s2x7k9e4q6w8r0tb").pipe(
  Schema.brand("EventId")
)
export type EventId = typeof EventId.Type

export const AuditEventId = prefixedId("aud", "An audit event's id", "aud_01m8ajd0qs9vcj985gtg2fcnak").pipe(
  Schema.brand("AuditEventId")
)
export type AuditEventId = typeof AuditEventId.Type

export const WebhookEndpointId = prefixedId(
  "wh",
  "A webhook endpoint's id",
  "wh_01m8mdr4k2x9f3q7v6n8w1z0pd"
).pipe(Schema.brand("WebhookEndpointId"))
export type WebhookEndpointId = typeof WebhookEndpointId.Type

export const DeliveryId = prefixedId("dlv", "A delivery's id", "dlv_01m8mdr5c7t2y4h6j8k0m3n5qb").pipe(
  Schema.brand("DeliveryId")
)
export type DeliveryId = typeof DeliveryId.Type

export const MessageId = prefixedId("msg", "A message's id", "msg_01m8mdm3h6z9q2w4e6r8t0y2u4").pipe(
  Schema.brand("MessageId")
)
export type MessageId = typeof MessageId.Type

export const idPrefixes = {
  customer: "cus",
  apiKey: "key",
  channel: "ch",
  message: "msg",
  webhook: "wh",
  event: "evt",
  delivery: "dlv",
  audit: "aud"
} as const
export type IdKind = keyof typeof idPrefixes
