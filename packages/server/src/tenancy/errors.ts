import type { ApiKeyId, ChannelId, CustomerId, Plan } from "@whatisup/domain"
import { Data } from "effect"

export class CustomerNotFound extends Data.TaggedError("CustomerNotFound")<{
  readonly customerId: CustomerId
}> {}

export class ApiKeyNotFound extends Data.TaggedError("ApiKeyNotFound")<{ readonly keyId: ApiKeyId }> {}

const limitNouns: Record<keyof Plan, string> = {
  max_channels: "channels",
  max_api_keys: "active API keys",
  messages_per_minute: "messages a minute per channel",
  api_requests_per_second: "API requests a second",
  pairing_codes_per_channel_per_hour: "pairing codes per channel an hour",
  pairing_codes_per_customer_per_day: "pairing codes a day",
  max_webhook_endpoints: "webhook endpoints"
}

/** A replayed creation would show again the plaintext of a key revoked since. */
export class CreatedKeyRevoked extends Data.TaggedError("CreatedKeyRevoked")<{ readonly keyId: ApiKeyId }> {}

/** Creating this would exceed one of the customer's plan limits. */
export class PlanLimitExceeded extends Data.TaggedError("PlanLimitExceeded")<{
  readonly limit: keyof Plan
  readonly max: number
}> {
  override get message() {
    return `The plan allows ${this.max} ${limitNouns[this.limit]}`
  }
}

/** A key was to be bound to a channel the customer does not have. */
export class BindingChannelNotFound extends Data.TaggedError("BindingChannelNotFound")<{
  readonly customerId: CustomerId
  readonly channelId: ChannelId
}> {}

/** A bearer key that does not authenticate anyone, and why. */
export class AuthenticationFailed extends Data.TaggedError("AuthenticationFailed")<{
  readonly reason: "missing" | "malformed" | "unknown_or_revoked" | "suspended"
}> {}

/** The customer used up its plan's request rate (all its keys together); it may try again after `retryAfterSeconds`. */
export class RateLimitExceeded extends Data.TaggedError("RateLimitExceeded")<{
  readonly requestsPerSecond: number
  readonly retryAfterSeconds: number
}> {}

/** The client's address failed to authenticate too often; it may try again after `retryAfterSeconds`. */
export class FailedAuthenticationLimitExceeded extends Data.TaggedError("FailedAuthenticationLimitExceeded")<{
  readonly retryAfterSeconds: number
}> {}
