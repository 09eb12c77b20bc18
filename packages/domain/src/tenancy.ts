import { Schema } from "effect"
import { lifecycleOperationsPerMinute } from "./channels.ts"
import { ApiKeyId, ChannelId, CustomerId } from "./ids.ts"
import { Text } from "./text.ts"
import { OptionalTimestamp, Timestamp } from "./time.ts"

const PositiveInt = (description: string) =>
  Schema.Int.pipe(Schema.check(Schema.isBetween({ minimum: 1, maximum: 1_000_000 }))).annotate({
    description
  })

export const Plan = Schema.Struct({
  max_channels: PositiveInt(
    `Channels the customer may have (deleted ones do not count); it also paces channel creates, deletes, connects, restarts and logouts: at most ${lifecycleOperationsPerMinute} a minute for each of these channels, all of them together`
  ),
  max_api_keys: PositiveInt("API keys the customer may have that are not revoked"),
  messages_per_minute: PositiveInt("Messages each channel may send per minute"),
  api_requests_per_second: PositiveInt(
    "API requests the customer may make per second, all its keys together, in bursts of up to twice that; beyond it a 429 rate_limited"
  ),
  pairing_codes_per_channel_per_hour: PositiveInt(
    "Connects by pairing code one channel may make in any hour (each pushes a link prompt to the number named); beyond it a 429 rate_limited"
  ),
  pairing_codes_per_customer_per_day: PositiveInt(
    "Connects by pairing code the customer's channels may make together in any 24 hours; beyond it a 429 rate_limited"
  ),
  max_webhook_endpoints: PositiveInt(
    "Webhook endpoints the customer may have, for every channel and for single channels together (deleted ones do not count)"
  )
}).annotate({ description: "The customer's limits, set by the operator" })
export type Plan = typeof Plan.Type

export const defaultPlan: Plan = {
  max_channels: 5,
  max_api_keys: 10,
  messages_per_minute: 60,
  api_requests_per_second: 50,
  pairing_codes_per_channel_per_hour: 3,
  pairing_codes_per_customer_per_day: 20,
  max_webhook_endpoints: 10
}

export const CustomerStatus = Schema.Literals(["active", "suspended"]).annotate({
  description:
    "suspended: every key of the customer is refused (401 customer_suspended) and its channels are stopped until the operator resumes it"
})
export type CustomerStatus = typeof CustomerStatus.Type

export const Customer = Schema.Struct({
  id: CustomerId,
  name: Schema.String.annotate({
    description: "The customer's name, as the operator created it",
    examples: ["Acme Corp"]
  }),
  status: CustomerStatus,
  plan: Plan,
  created_at: Timestamp("When the operator created the customer")
}).annotate({
  description: "The account that owns channels and API keys: the billing and isolation boundary"
})
export type Customer = typeof Customer.Type

export const ApiKey = Schema.Struct({
  id: ApiKeyId,
  name: Schema.NullOr(Schema.String).annotate({
    description: "The key's name; null when it has none",
    examples: ["ci"]
  }),
  prefix: Schema.String.annotate({
    description: "The first 8 characters of the key, to recognise it by",
    examples: ["wiu_zT0p"]
  }),
  last_four: Schema.String.annotate({ description: "The last 4 characters of the key", examples: ["Ah78"] }),
  channel_id: Schema.NullOr(ChannelId).annotate({
    description: "The one channel this key may see and act on; null for a key of the whole customer",
    examples: [null]
  }),
  created_at: Timestamp("When the key was created"),
  last_used_at: OptionalTimestamp("When the key last authenticated a request (updated every few seconds)"),
  revoked_at: OptionalTimestamp(
    "When the key was revoked (by DELETE, or when the channel it is bound to was deleted); null while it works"
  ).annotate({
    examples: [null]
  })
}).annotate({ description: "An API key, without its secret part" })
export type ApiKey = typeof ApiKey.Type

export const ApiKeyCreated = Schema.Struct({
  ...ApiKey.fields,
  key: Schema.String.annotate({
    description:
      "The key's plaintext, shown only in this response: send it as Authorization: Bearer wiu_...; store it now",
    examples: ["wiu_zT0p8FtAij_M3TttGz3uiDza9cB7cRr6EX5NxfWAh78"]
  })
}).annotate({ description: "A new API key, with its plaintext (shown once)" })
export type ApiKeyCreated = typeof ApiKeyCreated.Type

export const KeyName = Text(1, 100).annotate({
  description: "A name to recognise the key by, 1 to 100 characters",
  examples: ["ci"]
})

export const CreateApiKey = Schema.Struct({
  name: Schema.optionalKey(KeyName),
  channel_id: Schema.optionalKey(
    ChannelId.annotate({
      description: "Bind the key to this channel alone: it sees and acts on that channel and nothing else"
    })
  )
}).annotate({ examples: [{ name: "ci" }] })

export const Me = Schema.Struct({
  customer: Customer,
  key_id: ApiKeyId.annotate({ description: "The id of the key that made this request" }),
  channel_id: Schema.NullOr(ChannelId).annotate({
    description: "The channel the key is bound to; null for a key of the whole customer",
    examples: [null]
  })
}).annotate({ description: "Who is calling: the key's customer, the key, and the channel it is bound to" })
export type Me = typeof Me.Type
