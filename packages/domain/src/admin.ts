import { Schema } from "effect"
import { Rpc, RpcGroup, RpcMiddleware } from "effect/rpc"
import { ChannelId, CustomerId } from "./ids.ts"
import { ChannelStatus } from "./channels.ts"
import { ApiKeyCreated, Customer, KeyName, Plan } from "./tenancy.ts"
import { Delivery, DeliveryStatus } from "./webhooks.ts"
import { Message, MessageDirection, MessageStatus } from "./messages.ts"
import { Text } from "./text.ts"

export class OperatorUnauthorized extends Schema.TaggedError<OperatorUnauthorized>()("OperatorUnauthorized", {
  message: Schema.String
}) {}

export class CustomerNotFound extends Schema.TaggedError<CustomerNotFound>()("CustomerNotFound", {
  customer_id: Schema.String
}) {}

export class AdminRequestInvalid extends Schema.TaggedError<AdminRequestInvalid>()("AdminRequestInvalid", {
  message: Schema.String
}) {}

/** The operator token, sent as `Authorization: Bearer <token>` and compared in constant time. */
export class OperatorAuth extends RpcMiddleware.Service<OperatorAuth>()("whatisup/OperatorAuth", {
  error: OperatorUnauthorized
}) {}

const CustomerName = Text(1, 200)
export const PlanPatch = Schema.Struct({
  max_channels: Schema.optionalKey(Plan.fields.max_channels),
  max_api_keys: Schema.optionalKey(Plan.fields.max_api_keys),
  messages_per_minute: Schema.optionalKey(Plan.fields.messages_per_minute),
  api_requests_per_second: Schema.optionalKey(Plan.fields.api_requests_per_second),
  pairing_codes_per_channel_per_hour: Schema.optionalKey(Plan.fields.pairing_codes_per_channel_per_hour),
  pairing_codes_per_customer_per_day: Schema.optionalKey(Plan.fields.pairing_codes_per_customer_per_day),
  max_webhook_endpoints: Schema.optionalKey(Plan.fields.max_webhook_endpoints)
})

export const CustomerCreated = Schema.Struct({ customer: Customer, api_key: ApiKeyCreated })

export const RotationResult = Schema.Struct({
  key_id: Schema.String,
  stores: Schema.Array(
    Schema.Struct({
      store: Schema.String.annotate({ description: "an encrypted column, as table.column" }),
      rewritten: Schema.Number.annotate({ description: "ciphertexts rewritten under the newest key" })
    })
  )
})

export const AdminChannel = Schema.Struct({
  id: ChannelId,
  customer_id: CustomerId,
  name: Schema.NullOr(Schema.String),
  status: ChannelStatus,
  status_reason: Schema.NullOr(Schema.String),
  phone_number: Schema.NullOr(Schema.String),
  node: Schema.NullOr(Schema.String).annotate({
    description: "the gateway node holding the channel's lease"
  }),
  lease_expires_at: Schema.NullOr(Schema.String)
})
export type AdminChannel = typeof AdminChannel.Type

export class AdminRpcs extends RpcGroup.make(
  Rpc.make("CreateCustomer", {
    payload: { name: CustomerName, plan: Schema.optionalKey(PlanPatch) },
    success: CustomerCreated
  }),
  Rpc.make("ListCustomers", { success: Schema.Array(Customer) }),
  Rpc.make("GetCustomer", { payload: { id: CustomerId }, success: Customer, error: CustomerNotFound }),
  Rpc.make("SetPlan", {
    payload: { id: CustomerId, plan: PlanPatch },
    success: Customer,
    error: CustomerNotFound
  }),
  Rpc.make("SuspendCustomer", { payload: { id: CustomerId }, success: Customer, error: CustomerNotFound }),
  Rpc.make("ResumeCustomer", { payload: { id: CustomerId }, success: Customer, error: CustomerNotFound }),
  Rpc.make("IssueApiKey", {
    payload: {
      customer_id: CustomerId,
      name: Schema.optionalKey(KeyName),
      channel_id: Schema.optionalKey(ChannelId)
    },
    success: ApiKeyCreated,
    error: Schema.Union([CustomerNotFound, AdminRequestInvalid])
  }),
  Rpc.make("ListChannels", {
    payload: {
      node: Schema.optionalKey(Schema.String),
      status: Schema.optionalKey(ChannelStatus),
      customer_id: Schema.optionalKey(CustomerId)
    },
    success: Schema.Array(AdminChannel)
  }),
  Rpc.make("ListDeliveries", {
    payload: {
      customer_id: CustomerId,
      status: Schema.optionalKey(DeliveryStatus),
      limit: Schema.optionalKey(
        Schema.Int.pipe(Schema.check(Schema.isBetween({ minimum: 1, maximum: 1000 })))
      )
    },
    success: Schema.Array(Delivery),
    error: CustomerNotFound
  }),
  Rpc.make("ListMessages", {
    payload: {
      channel_id: ChannelId,
      direction: Schema.optionalKey(MessageDirection),
      status: Schema.optionalKey(MessageStatus),
      limit: Schema.optionalKey(
        Schema.Int.pipe(Schema.check(Schema.isBetween({ minimum: 1, maximum: 1000 })))
      )
    },
    success: Schema.Array(Message),
    error: AdminRequestInvalid
  }),
  Rpc.make("RotateMasterKey", { success: RotationResult })
).middleware(OperatorAuth) {}
