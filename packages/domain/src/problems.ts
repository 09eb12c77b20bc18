import { Schema } from "effect"
import { HttpApiError } from "effect/http-api"

const problemType = (slug: string) => `https://whatisup.dev/problems/${slug}`

export const FieldError = Schema.Struct({
  path: Schema.String,
  message: Schema.String
})
export type FieldError = typeof FieldError.Type

/** How many field errors a 400 lists at most; the rest are only counted. */
export const maxFieldErrors = 20

export class InvalidRequest extends HttpApiError.Problem<InvalidRequest>()(
  "InvalidRequest",
  { type: problemType("invalid-request"), status: 400, title: "The request is invalid" },
  {
    code: Schema.tag("invalid_request"),
    errors: Schema.Array(FieldError).annotate({
      description: `each offending field, at most ${maxFieldErrors}`
    }),
    errors_omitted: Schema.optionalKey(
      Schema.Int.annotate({
        description: `how many further errors were found but not listed (present only when more than ${maxFieldErrors}); validation may stop early, so there may be more`
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
    code: Schema.tag("payload_too_large"),
    max_bytes: Schema.Int.annotate({
      description: `the largest body this endpoint takes, in bytes (${maxJsonBodyBytes} for JSON bodies); refused before it is read, whether announced in Content-Length or streamed`
    })
  }
) {}

export class Unauthorized extends HttpApiError.Problem<Unauthorized>()(
  "Unauthorized",
  { type: problemType("unauthorized"), status: 401, title: "Authentication failed" },
  { code: Schema.Literals(["missing_api_key", "malformed_api_key", "invalid_api_key", "customer_suspended"]) }
) {}

export class Forbidden extends HttpApiError.Problem<Forbidden>()(
  "Forbidden",
  { type: problemType("forbidden"), status: 403, title: "This key may not do that" },
  { code: Schema.tag("forbidden") }
) {}

export class PlanLimitReached extends HttpApiError.Problem<PlanLimitReached>()(
  "PlanLimitReached",
  { type: problemType("plan-limit-reached"), status: 403, title: "The plan's limit is reached" },
  { code: Schema.tag("plan_limit_reached"), limit: Schema.String, max: Schema.Number }
) {}

export class NotFound extends HttpApiError.Problem<NotFound>()(
  "NotFound",
  { type: problemType("not-found"), status: 404, title: "Not found" },
  { code: Schema.tag("not_found") }
) {}

export class InvalidState extends HttpApiError.Problem<InvalidState>()(
  "InvalidState",
  { type: problemType("invalid-state"), status: 409, title: "Not possible in the resource's current state" },
  { code: Schema.tag("invalid_state"), current_status: Schema.String }
) {}

export class IdempotencyKeyInUse extends HttpApiError.Problem<IdempotencyKeyInUse>()(
  "IdempotencyKeyInUse",
  {
    type: problemType("idempotency-key-in-use"),
    status: 409,
    title: "A request with this Idempotency-Key is still in flight"
  },
  { code: Schema.tag("idempotency_key_in_use") }
) {}

export class IdempotencyKeyReused extends HttpApiError.Problem<IdempotencyKeyReused>()(
  "IdempotencyKeyReused",
  {
    type: problemType("idempotency-key-reused"),
    status: 422,
    title: "This Idempotency-Key was used with another request"
  },
  { code: Schema.tag("idempotency_key_reused") }
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
    code: Schema.tag("idempotent_answer_revoked"),
    resource_id: Schema.String.annotate({ description: "What the first request with this key created" })
  }
) {}

export class RateLimited extends HttpApiError.Problem<RateLimited>()(
  "RateLimited",
  { type: problemType("rate-limited"), status: 429, title: "Too many requests" },
  {
    code: Schema.tag("rate_limited"),
    retry_after: Schema.Number.annotate({
      description:
        "seconds to wait (also in Retry-After); the plan's rate is shared by all the customer's keys"
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
    code: Schema.tag("too_many_failed_authentications"),
    retry_after: Schema.Number.annotate({
      description:
        "seconds to wait (also in Retry-After); meanwhile keys the gateway has already seen keep working from this address"
    })
  }
) {}

export class ServiceUnavailable extends HttpApiError.Problem<ServiceUnavailable>()(
  "ServiceUnavailable",
  { type: problemType("service-unavailable"), status: 503, title: "Not ready" },
  { code: Schema.tag("not_ready") }
) {}
