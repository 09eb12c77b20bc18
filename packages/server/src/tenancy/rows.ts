import {
  type ApiKey,
  ApiKeyId,
  ChannelId,
  type Customer,
  CustomerId,
  CustomerStatus,
  type Plan
} from "@whatisup/domain"
import { Schema } from "effect"

export const CustomerRow = Schema.Struct({
  id: CustomerId,
  name: Schema.String,
  status: CustomerStatus,
  max_channels: Schema.Number,
  max_api_keys: Schema.Number,
  messages_per_minute: Schema.Number,
  api_requests_per_second: Schema.Number,
  pairing_codes_per_channel_per_hour: Schema.Number,
  pairing_codes_per_customer_per_day: Schema.Number,
  max_webhook_endpoints: Schema.Number,
  created_at: Schema.Date
})
export type CustomerRow = typeof CustomerRow.Type

/** The columns of `CustomerRow`, for SELECT and RETURNING lists. */
export const customerColumns = `id, name, status, max_channels, max_api_keys, messages_per_minute,
  api_requests_per_second, pairing_codes_per_channel_per_hour, pairing_codes_per_customer_per_day, max_webhook_endpoints,
  created_at`

export const planOf = (row: CustomerRow): Plan => ({
  max_channels: row.max_channels,
  max_api_keys: row.max_api_keys,
  messages_per_minute: row.messages_per_minute,
  api_requests_per_second: row.api_requests_per_second,
  pairing_codes_per_channel_per_hour: row.pairing_codes_per_channel_per_hour,
  pairing_codes_per_customer_per_day: row.pairing_codes_per_customer_per_day,
  max_webhook_endpoints: row.max_webhook_endpoints
})

export const renderCustomer = (row: CustomerRow): Customer => ({
  id: row.id,
  name: row.name,
  status: row.status,
  plan: planOf(row),
  created_at: row.created_at.toISOString()
})

export const ApiKeyRow = Schema.Struct({
  id: ApiKeyId,
  name: Schema.NullOr(Schema.String),
  prefix: Schema.String,
  last_four: Schema.String,
  channel_id: Schema.NullOr(ChannelId),
  created_at: Schema.Date,
  last_used_at: Schema.NullOr(Schema.Date),
  revoked_at: Schema.NullOr(Schema.Date)
})
export type ApiKeyRow = typeof ApiKeyRow.Type

/** The columns of `ApiKeyRow`, for SELECT and RETURNING lists. */
export const apiKeyColumns = "id, name, prefix, last_four, channel_id, created_at, last_used_at, revoked_at"

export const renderApiKey = (row: ApiKeyRow): ApiKey => ({
  id: row.id,
  name: row.name,
  prefix: row.prefix,
  last_four: row.last_four,
  channel_id: row.channel_id,
  created_at: row.created_at.toISOString(),
  last_used_at: row.last_used_at?.toISOString() ?? null,
  revoked_at: row.revoked_at?.toISOString() ?? null
})
