import { Schema } from "effect"

const prefixedId = (prefix: string) =>
  Schema.String.pipe(
    Schema.check(
      Schema.isPattern(new RegExp(`^${prefix}_[0-9a-z]{26}$`), {
        message: `must be an id of the form ${prefix}_ followed by 26 lowercase letters or digits`
      })
    )
  )

export const CustomerId = prefixedId("cus").pipe(Schema.brand("CustomerId"))
export type CustomerId = typeof CustomerId.Type

export const ApiKeyId = prefixedId("key").pipe(Schema.brand("ApiKeyId"))
export type ApiKeyId = typeof ApiKeyId.Type

export const ChannelId = prefixedId("ch").pipe(Schema.brand("ChannelId"))
export type ChannelId = typeof ChannelId.Type

export const EventId = prefixedId("evt").pipe(Schema.brand("EventId"))
export type EventId = typeof EventId.Type

export const AuditEventId = prefixedId("aud").pipe(Schema.brand("AuditEventId"))
export type AuditEventId = typeof AuditEventId.Type

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
