import type { ChannelId, ChannelStatus } from "@whatisup/domain"
import { Data } from "effect"

/** No channel with this id is visible to the caller (deleted, another customer's, or never made). */
export class ChannelNotFound extends Data.TaggedError("ChannelNotFound")<{ readonly channelId: ChannelId }> {}

/** The channel's status does not allow what was asked. */
export class ChannelStateConflict extends Data.TaggedError("ChannelStateConflict")<{
  readonly channelId: ChannelId
  readonly status: ChannelStatus
  readonly action: "connect" | "log out" | "restart" | "send"
}> {}

/**
 * There is no QR to show: the channel is not pairing (`not_pairing`), is linked to a phone already
 * (`linked`), pairs by code (`pairing_by_code`), or WhatsApp has not sent the next code yet (`not_yet`).
 */
export class QrUnavailable extends Data.TaggedError("QrUnavailable")<{
  readonly channelId: ChannelId
  readonly status: ChannelStatus
  readonly reason: "not_pairing" | "linked" | "pairing_by_code" | "not_yet"
  /** The channel's status_reason: why it rests (qr_timeout...), or how its last connection ended. */
  readonly statusReason: string | null
}> {}

/** What the pacing of a channel's lifecycle refuses, by the window it counts over. */
export type PacingLimit =
  | "lifecycle_operations_per_minute"
  | "lifecycle_operations_per_customer_per_minute"
  | "pairing_codes_per_channel_per_hour"
  | "pairing_codes_per_customer_per_day"

/**
 * Asked too often: creates, deletes, connects, restarts and logouts, or pairing codes; it may be asked
 * again after `retryAfterSeconds`. No channel id for a create.
 */
export class ChannelOperationPaced extends Data.TaggedError("ChannelOperationPaced")<{
  readonly channelId: ChannelId | null
  readonly limit: PacingLimit
  readonly max: number
  readonly retryAfterSeconds: number
}> {}
