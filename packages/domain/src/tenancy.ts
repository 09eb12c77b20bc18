import { Schema } from "effect"
import { lifecycleOperationsPerMinute } from "./channels.ts"
import { ApiKeyId, ChannelId, CustomerId } from "./ids.ts"
import { Text } from "./text.ts"

const PositiveInt = Schema.Int.pipe(Schema.check(Schema.isBetween({ minimum: 1, maximum: 1_000_000 })))

export const Plan = Schema.Struct({
  max_channels: PositiveInt.annotate({
    description: `channels the customer may have at once; it also paces channel creates, deletes, connects, restarts and logouts: at most ${lifecycleOperationsPerMinute} a minute for each of these channels, all of them together`
  }),
  max_api_keys: PositiveInt,
  messages_per_minute: PositiveInt,
  api_requests_per_second: PositiveInt,
  pairing_codes_per_channel_per_hour: PositiveInt.annotate({
    description:
      "connects by pairing code one channel may make in any hour: each pushes a link prompt to the number named"
  }),
  pairing_codes_per_customer_per_day: PositiveInt.annotate({
    description: "connects by pairing code the customer's channels may make together in any 24 hours"
  })
})
export type Plan = typeof Plan.Type

export const defaultPlan: Plan = {
  max_channels: 5,
  max_api_keys: 10,
  messages_per_minute: 60,
  api_requests_per_second: 50,
  pairing_codes_per_channel_per_hour: 3,
  pairing_codes_per_customer_per_day: 20
}

export const CustomerStatus = Schema.Literals(["active", "suspended"])
export type CustomerStatus = typeof CustomerStatus.Type

export const Customer = Schema.Struct({
  id: CustomerId,
  name: Schema.String,
  status: CustomerStatus,
  plan: Plan,
  created_at: Schema.String
})
export type Customer = typeof Customer.Type

export const ApiKey = Schema.Struct({
  id: ApiKeyId,
  name: Schema.NullOr(Schema.String),
  prefix: Schema.String,
  last_four: Schema.String,
  channel_id: Schema.NullOr(ChannelId),
  created_at: Schema.String,
  last_used_at: Schema.NullOr(Schema.String),
  revoked_at: Schema.NullOr(Schema.String)
})
export type ApiKey = typeof ApiKey.Type

export const ApiKeyCreated = Schema.Struct({
  ...ApiKey.fields,
  key: Schema.String.annotate({ description: "The key's plaintext, shown only in this response" })
})
export type ApiKeyCreated = typeof ApiKeyCreated.Type

export const KeyName = Text(1, 100)

export const CreateApiKey = Schema.Struct({
  name: Schema.optionalKey(KeyName),
  channel_id: Schema.optionalKey(ChannelId.annotate({ description: "bind the key to this channel alone" }))
})

export const Me = Schema.Struct({
  customer: Customer,
  key_id: ApiKeyId,
  channel_id: Schema.NullOr(ChannelId)
})
export type Me = typeof Me.Type
