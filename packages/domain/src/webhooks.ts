import { Schema } from "effect"
import { EventType } from "./events.ts"
import { ChannelId, DeliveryId, EventId, WebhookEndpointId } from "./ids.ts"
import { Text } from "./text.ts"
import { OptionalTimestamp, Timestamp } from "./time.ts"

/** Seconds both secrets sign after a rotation when the request names no grace period (24 hours). */
export const defaultSecretGraceSeconds = 24 * 60 * 60

/** The longest grace period a rotation may ask for (7 days). */
export const maxSecretGraceSeconds = 7 * 24 * 60 * 60

/** How long an endpoint may fail every attempt before the gateway disables it (5 days). */
export const failingEndpointDisabledAfterDays = 5

/** How much of a receiver's answer an attempt keeps. */
export const responseExcerptBytes = 4096

export const WebhookUrl = Schema.String.pipe(
  Schema.check(
    Schema.isMaxLength(2048, { message: "must be at most 2048 characters" }),
    // no spaces or control characters, and whole code points only (no lone surrogates)
    Schema.isPattern(
      // eslint-disable-next-line no-control-regex -- control characters are what it refuses
      /^https?:\/\/(?:[^\s\u0000-\u001f\u007f-\u009f\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff])+$/iu,
      {
        message: "must be an absolute http:// or https:// URL, without spaces or control characters"
      }
    )
  )
).annotate({
  description:
    "Where events are posted: an absolute http(s) URL of a public address, at most 2048 characters (https only on a production gateway). The gateway resolves it and refuses loopback, private, link-local, reserved and cloud-metadata addresses when it is set and again before every attempt, never follows redirects, and refuses user:password@ in it",
  examples: ["https://example.com/whatsapp/events"]
})

export const WebhookDescription = Text(0, 500).annotate({
  description: "A note to recognise the endpoint by, up to 500 characters",
  examples: ["orders service"]
})

export const WebhookEventTypes = Schema.Array(EventType)
  .pipe(
    Schema.check(
      Schema.isMaxLength(32, { message: "must list at most 32 event types" }),
      Schema.isUnique({ message: "must not list an event type twice" })
    )
  )
  .annotate({
    description:
      "The event types posted to the endpoint; empty (the default) posts every type, including types added later",
    examples: [["channel.connected", "channel.logged_out"]]
  })

export const WebhookStatus = Schema.Literals(["enabled", "disabled"]).annotate({
  description:
    "enabled: events are posted; disabled: nothing is posted (see disabled_reason) until enabled again"
})

export const DisabledReason = Schema.Literals(["disabled_by_request", "endpoint_gone", "failing"]).annotate({
  description: `Why the endpoint is disabled: disabled_by_request (PATCH enabled: false), endpoint_gone (it answered 410 Gone), failing (every attempt failed for ${failingEndpointDisabledAfterDays} days); null while enabled`
})

export const WebhookEndpoint = Schema.Struct({
  id: WebhookEndpointId,
  channel_id: Schema.NullOr(ChannelId).annotate({
    description:
      "The one channel whose events are posted; null for an endpoint of the whole customer, which gets the events of every channel, present and future",
    examples: [null]
  }),
  url: WebhookUrl,
  description: Schema.NullOr(Schema.String).annotate({
    description: "The endpoint's note; null when it has none",
    examples: ["orders service"]
  }),
  event_types: WebhookEventTypes,
  status: WebhookStatus,
  disabled_reason: Schema.NullOr(DisabledReason).annotate({
    description: DisabledReason.ast.annotations?.["description"] as string,
    examples: [null, "endpoint_gone"]
  }),
  failing_since: OptionalTimestamp(
    `Since when every attempt to this endpoint has failed; null while its last attempt succeeded. At ${failingEndpointDisabledAfterDays} days the endpoint is disabled`
  ).annotate({ examples: [null] }),
  previous_secret_expires_at: OptionalTimestamp(
    "After a secret rotation: until when the previous secret signs too (each request carries both signatures); null otherwise"
  ).annotate({ examples: [null] }),
  created_at: Timestamp("When the endpoint was created"),
  updated_at: Timestamp("When the endpoint was last changed")
}).annotate({ description: "A URL the gateway posts events to, signed as Standard Webhooks" })
export type WebhookEndpoint = typeof WebhookEndpoint.Type

export const WebhookSecret = Schema.String.annotate({
  description:
    "The signing secret: whsec_ then the base64 of 32 random bytes, shown only when the endpoint is created and when its secret is rotated. Verify each request's webhook-signature with it (any Standard Webhooks library does)",
  examples: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
})

export const WebhookEndpointWithSecret = Schema.Struct({
  ...WebhookEndpoint.fields,
  secret: WebhookSecret
}).annotate({ description: "A webhook endpoint with its signing secret, shown this once" })
export type WebhookEndpointWithSecret = typeof WebhookEndpointWithSecret.Type

export const CreateWebhookEndpoint = Schema.Struct({
  url: WebhookUrl,
  description: Schema.optionalKey(WebhookDescription),
  event_types: Schema.optionalKey(WebhookEventTypes),
  enabled: Schema.optionalKey(
    Schema.Boolean.annotate({ description: "false creates the endpoint disabled; true by default" })
  )
}).annotate({
  description: "A new webhook endpoint",
  examples: [
    { url: "https://example.com/whatsapp/events" },
    { url: "https://example.com/hooks", description: "orders service", event_types: ["channel.connected"] }
  ]
})
export type CreateWebhookEndpoint = typeof CreateWebhookEndpoint.Type

export const UpdateWebhookEndpoint = Schema.Struct({
  url: Schema.optionalKey(WebhookUrl),
  description: Schema.optionalKey(
    Schema.NullOr(WebhookDescription).annotate({
      description: "A note to recognise the endpoint by, up to 500 characters; null removes it"
    })
  ),
  event_types: Schema.optionalKey(WebhookEventTypes),
  enabled: Schema.optionalKey(
    Schema.Boolean.annotate({
      description:
        "false disables the endpoint (disabled_reason disabled_by_request): what was pending for it fails, and events that happen while it is disabled are not queued for it. true enables it again, whatever disabled it, and clears failing_since; POST /v1/webhooks/{id}/recover sends again the deliveries that failed"
    })
  )
}).annotate({
  description: "The fields to change; the others keep their values",
  examples: [{ enabled: false }, { url: "https://example.com/new-hooks", event_types: [] }]
})
export type UpdateWebhookEndpoint = typeof UpdateWebhookEndpoint.Type

export const RotateSecret = Schema.Struct({
  grace_period_seconds: Schema.optionalKey(
    Schema.Int.pipe(
      Schema.check(
        Schema.isBetween(
          { minimum: 0, maximum: maxSecretGraceSeconds },
          { message: `must be a whole number of seconds from 0 to ${maxSecretGraceSeconds} (7 days)` }
        )
      )
    ).annotate({
      description: `How long the previous secret keeps signing beside the new one, in seconds: ${defaultSecretGraceSeconds} (24 hours) by default, at most ${maxSecretGraceSeconds} (7 days); 0 retires it at once`
    })
  )
}).annotate({ description: "A secret rotation", examples: [{}, { grace_period_seconds: 3600 }] })

// a date that exists (from year 1; 30 days hath September..., 29 February in leap years only), then the time
// and zone (an offset up to ±15:59, as PostgreSQL takes them)
const isoMoment =
  /^(?:(?!0000)\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)|02-(?:0[1-9]|1\d|2[0-8]))|(?:\d\d(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?(Z|[+-](0\d|1[0-5]):[0-5]\d)$/u

/** An ISO 8601 moment with its time zone (`2026-11-29T10:00:00Z`), on a date that exists. */
export const Moment = (description: string) =>
  Schema.String.pipe(
    Schema.check(
      Schema.isPattern(isoMoment, {
        message:
          "must be an ISO 8601 date and time with a time zone, on a date that exists, such as 2026-11-29T10:00:00Z"
      })
    )
  ).annotate({ description, examples: ["2026-11-29T10:00:00Z"] })

export const RecoverRequest = Schema.Struct({
  since: Moment(
    "Every delivery to the endpoint that failed and was created at or after this moment is queued again"
  )
}).annotate({ description: "What to send again", examples: [{ since: "2026-11-29T10:00:00Z" }] })

export const RecoverAccepted = Schema.Struct({
  requeued: Schema.Int.annotate({
    description: "How many failed deliveries were queued again",
    examples: [3]
  })
}).annotate({ description: "Failed deliveries queued again" })

export const DeliveryStatus = Schema.Literals(["pending", "succeeded", "failed"]).annotate({
  description:
    "pending: waiting for its next attempt (next_attempt_at); succeeded: the endpoint answered 2xx; failed: every scheduled attempt failed, or the endpoint was disabled (send it again with redeliver or recover)"
})

export type DeliveryStatus = typeof DeliveryStatus.Type

export const AttemptErrorType = Schema.Literals([
  "DestinationBlocked",
  "DnsFailure",
  "ConnectTimeout",
  "ResponseTimeout",
  "TlsFailure",
  "ConnectionReset",
  "HttpStatus"
]).annotate({
  description:
    "Why an attempt failed: DestinationBlocked (the URL resolved to an address that is not public), DnsFailure, ConnectTimeout (5 s), ResponseTimeout (15 s in all), TlsFailure, ConnectionReset, HttpStatus (the endpoint answered other than 2xx; redirects are not followed); null when it succeeded"
})

export const Delivery = Schema.Struct({
  id: DeliveryId,
  endpoint_id: WebhookEndpointId,
  event_id: EventId.annotate({
    description: "The event delivered; it is also the webhook-id header of every attempt"
  }),
  event_type: EventType,
  status: DeliveryStatus,
  attempts: Schema.Int.annotate({ description: "Attempts made so far", examples: [1] }),
  next_attempt_at: OptionalTimestamp(
    "When the next attempt is due while pending (at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h after each failure, ±20 %, or the endpoint's Retry-After); null otherwise"
  ).annotate({ examples: [null] }),
  last_attempt_at: OptionalTimestamp("When the last attempt was made; null before the first"),
  created_at: Timestamp("When the event was queued for this endpoint")
}).annotate({ description: "One event on its way to one endpoint" })
export type Delivery = typeof Delivery.Type

export const DeliveryAttempt = Schema.Struct({
  attempt: Schema.Int.annotate({ description: "Its number, from 1", examples: [1] }),
  attempted_at: Timestamp("When it was made"),
  duration_ms: Schema.Int.annotate({ description: "How long it took, in milliseconds", examples: [42] }),
  status_code: Schema.NullOr(Schema.Int).annotate({
    description: "The HTTP status the endpoint answered; null when no answer came",
    examples: [200]
  }),
  error_type: Schema.NullOr(AttemptErrorType).annotate({
    description: AttemptErrorType.ast.annotations?.["description"] as string,
    examples: [null, "ResponseTimeout"]
  }),
  error_detail: Schema.NullOr(Schema.String).annotate({
    description: "What went wrong, in words; null when it succeeded",
    examples: [null]
  }),
  response: Schema.NullOr(Schema.String).annotate({
    description: `The first ${responseExcerptBytes} bytes of the endpoint's answer; null when no answer came`,
    examples: ["ok"]
  })
}).annotate({ description: "One try at posting an event" })
export type DeliveryAttempt = typeof DeliveryAttempt.Type

export const DeliveryWithAttempts = Schema.Struct({
  ...Delivery.fields,
  attempt_log: Schema.Array(DeliveryAttempt).annotate({ description: "Every attempt, oldest first" })
}).annotate({ description: "A delivery with every attempt made" })
export type DeliveryWithAttempts = typeof DeliveryWithAttempts.Type

export const DeliveryQuery = {
  status: Schema.optionalKey(DeliveryStatus.annotate({ description: "Only deliveries in this status" })),
  event_type: Schema.optionalKey(EventType.annotate({ description: "Only deliveries of this event type" })),
  since: Schema.optionalKey(Moment("Only deliveries created at or after this moment")),
  until: Schema.optionalKey(Moment("Only deliveries created before this moment"))
}
