import { Schema } from "effect"
import { HttpApiError } from "effect/http-api"

const problemType = (slug: string) => `https://whatisup.dev/problems/${slug}`

export const FieldError = Schema.Struct({
  path: Schema.String.annotate({
    description: "Where the value was sent: body., query., path. or header. then the field's name",
    examples: ["body.name"]
  }),
  message: Schema.String.annotate({ description: "What is wrong with it", examples: ["Expected string"] })
}).annotate({ description: "One offending field" })
export type FieldError = typeof FieldError.Type

/** How many field errors a 400 lists at most; the rest are only counted. */
export const maxFieldErrors = 20

export class InvalidRequest extends HttpApiError.Problem<InvalidRequest>()(
  "InvalidRequest",
  { type: problemType("invalid-request"), status: 400, title: "The request is invalid" },
  {
    code: Schema.tag("invalid_request").annotate({
      description: "The request is malformed or a field is invalid"
    }),
    errors: Schema.Array(FieldError).annotate({
      description: `Each offending field, each with what is wrong; at most ${maxFieldErrors}`
    }),
    errors_omitted: Schema.optionalKey(
      Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(1))).annotate({
        description: `How many further errors were found but not listed (present only when more than ${maxFieldErrors}); validation may stop early, so there may be more`
      })
    )
  }
) {}

/**
 * The largest JSON body the API takes: every payload it declares is small (names, ids, a phone
 * number), and refusing more before reading it keeps one tenant's large bodies from costing the others.
 */
export const maxJsonBodyBytes = 64 * 1024

export class PayloadTooLarge extends HttpApiError.Problem<PayloadTooLarge>()(
  "PayloadTooLarge",
  { type: problemType("payload-too-large"), status: 413, title: "The request body is too large" },
  {
    code: Schema.tag("payload_too_large").annotate({
      description: "The request body is larger than the endpoint takes"
    }),
    max_bytes: Schema.Int.annotate({
      description: `the largest body this endpoint takes, in bytes (${maxJsonBodyBytes} for JSON bodies); refused before it is read, whether announced in Content-Length or streamed`
    })
  }
) {}

export class Unauthorized extends HttpApiError.Problem<Unauthorized>()(
  "Unauthorized",
  { type: problemType("unauthorized"), status: 401, title: "Authentication failed" },
  {
    code: Schema.Literals([
      "missing_api_key",
      "malformed_api_key",
      "invalid_api_key",
      "customer_suspended"
    ]).annotate({
      description:
        "missing_api_key: no Authorization: Bearer header; malformed_api_key: not a wiu_ key; invalid_api_key: unknown or revoked; customer_suspended: the operator suspended the customer"
    })
  }
) {}

export class Forbidden extends HttpApiError.Problem<Forbidden>()(
  "Forbidden",
  { type: problemType("forbidden"), status: 403, title: "This key may not do that" },
  {
    code: Schema.tag("forbidden").annotate({
      description: "A key bound to a channel tried to manage the account"
    })
  }
) {}

export class PlanLimitReached extends HttpApiError.Problem<PlanLimitReached>()(
  "PlanLimitReached",
  { type: problemType("plan-limit-reached"), status: 403, title: "The plan's limit is reached" },
  {
    code: Schema.tag("plan_limit_reached").annotate({ description: "Creating this would exceed the plan" }),
    limit: Schema.String.annotate({
      description: "The plan's limit that was reached",
      examples: ["max_channels"]
    }),
    max: Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(1))).annotate({
      description: "What the plan allows"
    })
  }
) {}

export class NotFound extends HttpApiError.Problem<NotFound>()(
  "NotFound",
  { type: problemType("not-found"), status: 404, title: "Not found" },
  {
    code: Schema.tag("not_found").annotate({
      description: "No such resource for this key (another customer's answers the same)"
    })
  }
) {}

export class InvalidState extends HttpApiError.Problem<InvalidState>()(
  "InvalidState",
  { type: problemType("invalid-state"), status: 409, title: "Not possible in the resource's current state" },
  {
    code: Schema.tag("invalid_state").annotate({
      description: "The resource's status does not allow this now; detail says what would"
    }),
    current_status: Schema.String.annotate({
      description: "The resource's status now",
      examples: ["connected"]
    })
  }
) {}

export class IdempotencyKeyInUse extends HttpApiError.Problem<IdempotencyKeyInUse>()(
  "IdempotencyKeyInUse",
  {
    type: problemType("idempotency-key-in-use"),
    status: 409,
    title: "A request with this Idempotency-Key is still in flight"
  },
  {
    code: Schema.tag("idempotency_key_in_use").annotate({
      description: "The first request with this Idempotency-Key is still running: retry in a moment"
    })
  }
) {}

export class IdempotencyKeyReused extends HttpApiError.Problem<IdempotencyKeyReused>()(
  "IdempotencyKeyReused",
  {
    type: problemType("idempotency-key-reused"),
    status: 422,
    title: "This Idempotency-Key was used with another request"
  },
  {
    code: Schema.tag("idempotency_key_reused").annotate({
      description: "This Idempotency-Key was sent before with another body: use a new key for a new request"
    })
  }
) {}

/**
 * A replay refused: the first answer to this request showed a secret once (a new API key's
 * plaintext), and what it created has been revoked since, so the secret is not shown again. The
 * request is not made again either: `resource_id` names what it created.
 */
export class IdempotentAnswerRevoked extends HttpApiError.Problem<IdempotentAnswerRevoked>()(
  "IdempotentAnswerRevoked",
  {
    type: problemType("idempotent-answer-revoked"),
    status: 409,
    title: "The first answer to this request held a secret revoked since"
  },
  {
    code: Schema.tag("idempotent_answer_revoked").annotate({
      description: "The replayed answer would show a key revoked since"
    }),
    resource_id: Schema.String.annotate({ description: "What the first request with this key created" })
  }
) {}

export class RateLimited extends HttpApiError.Problem<RateLimited>()(
  "RateLimited",
  { type: problemType("rate-limited"), status: 429, title: "Too many requests" },
  {
    code: Schema.tag("rate_limited").annotate({
      description:
        "The customer made more requests than its plan allows (all its keys share the rate), or asked too often for a channel's connect, restart, logout or pairing codes"
    }),
    retry_after: Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(1))).annotate({
      description: "Seconds to wait before retrying (also in Retry-After)"
    })
  }
) {}

export class TooManyEventStreams extends HttpApiError.Problem<TooManyEventStreams>()(
  "TooManyEventStreams",
  { type: problemType("too-many-event-streams"), status: 429, title: "Too many event streams open" },
  {
    code: Schema.tag("too_many_event_streams").annotate({
      description:
        "The API key holds as many open GET /v1/events/stream connections as it may: close one (or use another key) first"
    }),
    max: Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(1))).annotate({
      description: "How many streams one API key may hold open at once"
    }),
    retry_after: Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(1))).annotate({
      description: "Seconds to wait before retrying (also in Retry-After)"
    })
  }
) {}

export class TooManyFailedAuthentications extends HttpApiError.Problem<TooManyFailedAuthentications>()(
  "TooManyFailedAuthentications",
  {
    type: problemType("too-many-failed-authentications"),
    status: 429,
    title: "Too many failed authentications from this address"
  },
  {
    code: Schema.tag("too_many_failed_authentications").annotate({
      description: "This client address sent too many malformed, unknown or revoked keys lately"
    }),
    retry_after: Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(1))).annotate({
      description:
        "Seconds to wait before retrying (also in Retry-After); meanwhile keys the gateway has already seen keep working from this address"
    })
  }
) {}

export class ServiceUnavailable extends HttpApiError.Problem<ServiceUnavailable>()(
  "ServiceUnavailable",
  { type: problemType("service-unavailable"), status: 503, title: "Not ready" },
  { code: Schema.tag("not_ready").annotate({ description: "The gateway cannot serve yet; retry shortly" }) }
) {}
