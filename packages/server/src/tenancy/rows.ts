import type { ApiKey, Customer, Plan } from "@whatisup/domain"

export interface CustomerRow {
  readonly id: string
  readonly name: string
  readonly status: "active" | "suspended"
  readonly max_channels: number
  readonly max_api_keys: number
  readonly messages_per_minute: number
  readonly api_requests_per_second: number
  readonly created_at: Date
}

export const planOf = (row: CustomerRow): Plan => ({
  max_channels: row.max_channels,
  max_api_keys: row.max_api_keys,
  messages_per_minute: row.messages_per_minute,
  api_requests_per_second: row.api_requests_per_second
})

export const renderCustomer = (row: CustomerRow): Customer => ({
  id: row.id as Customer["id"],
  name: row.name,
  status: row.status,
  plan: planOf(row),
  created_at: row.created_at.toISOString()
})

export interface ApiKeyRow {
  readonly id: string
  readonly name: string | null
  readonly prefix: string
  readonly last_four: string
  readonly channel_id: string | null
  readonly created_at: Date
  readonly last_used_at: Date | null
  readonly revoked_at: Date | null
}

export const renderApiKey = (row: ApiKeyRow): ApiKey => ({
  id: row.id as ApiKey["id"],
  name: row.name,
  prefix: row.prefix,
  last_four: row.last_four,
  channel_id: row.channel_id as ApiKey["channel_id"],
  created_at: row.created_at.toISOString(),
  last_used_at: row.last_used_at?.toISOString() ?? null,
  revoked_at: row.revoked_at?.toISOString() ?? null
})
