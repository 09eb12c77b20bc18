import {
  IdempotentAnswerRevoked,
  InvalidRequest,
  InvalidState,
  lifecycleOperationsPerMinute,
  NotFound,
  PlanLimitReached,
  RateLimited,
  TooManyFailedAuthentications,
  Unauthorized
} from "@whatisup/domain"
import { Cause, Effect } from "effect"
import { HttpServerResponse } from "effect/http"
import { SqlError } from "effect/sql"
import type {
  ChannelNotFound,
  ChannelOperationPaced,
  ChannelStateConflict,
  QrUnavailable
} from "../channels/errors.ts"
import type { InvalidCursor } from "../db/pagination.ts"
import type {
  MediaLinkRefused,
  MessageNotFound,
  MessageStateConflict,
  ReferencedMessageNotFound
} from "../messages/errors.ts"
import type {
  ApiKeyNotFound,
  AuthenticationFailed,
  BindingChannelNotFound,
  CreatedKeyRevoked,
  CustomerNotFound,
  FailedAuthenticationLimitExceeded,
  PlanLimitExceeded,
  RateLimitExceeded
} from "../tenancy/errors.ts"
import type {
  CreatedSecretReplaced,
  DeliveryInFlight,
  DeliveryNotFound,
  EndpointChannelNotFound,
  WebhookEndpointDisabled,
  WebhookEndpointNotFound,
  WebhookUrlRefused
} from "../webhooks/errors.ts"

const problemTypeBase = "https://whatisup.dev/problems/"

export interface ProblemOptions {
  readonly status: number
  readonly code: string
  readonly title: string
  readonly detail?: string
  readonly headers?: Record<string, string>
  readonly fields?: Record<string, unknown>
}

/** The body of a problem+json answer (RFC 9457), with the stable `code`. */
export const problemDetails = (options: ProblemOptions) => ({
  type: `${problemTypeBase}${options.code.replaceAll("_", "-")}`,
  status: options.status,
  title: options.title,
  code: options.code,
  ...(options.detail === undefined ? {} : { detail: options.detail }),
  ...options.fields
})

/** A problem+json response built outside a typed endpoint (unknown routes, oversized bodies, defects). */
export const problemResponse = (options: ProblemOptions) =>
  HttpServerResponse.jsonUnsafe(problemDetails(options), {
    status: options.status,
    contentType: "application/problem+json",
    headers: options.headers ?? {}
  })

const sizeOf = (bytes: number) =>
  bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${Math.round(bytes / 1024)} KiB`

/** A body larger than the endpoint takes (`PayloadTooLarge`); the connection is closed rather than read to its end. */
export const payloadTooLarge = (maxBytes: number) =>
  problemResponse({
    status: 413,
    code: "payload_too_large",
    title: "The request body is too large",
    detail: `Bodies are limited to ${sizeOf(maxBytes)} here`,
    headers: { connection: "close" },
    fields: { max_bytes: maxBytes }
  })

const generic: Record<number, { code: string; title: string; detail?: string }> = {
  400: { code: "invalid_request", title: "The request is invalid" },
  404: { code: "route_not_found", title: "Not found", detail: "No such route; see /docs" },
  405: { code: "method_not_allowed", title: "Method not allowed" },
  406: { code: "not_acceptable", title: "Not acceptable" },
  415: {
    code: "invalid_content_type",
    title: "The request is invalid",
    detail: "Send the body as application/json"
  },
  500: { code: "internal_error", title: "Internal server error" }
}

/** Responses the framework answers with an empty or plain body become problems with a stable code. */
export const asProblem = (response: HttpServerResponse.HttpServerResponse) => {
  if (response.status < 400) return response
  const contentType = response.headers["content-type"] ?? ""
  if (contentType.includes("json")) return response
  const known = generic[response.status]
  const status = response.status === 415 ? 400 : response.status
  return problemResponse({
    status,
    code: known?.code ?? "error",
    title: known?.title ?? "Error",
    ...(known?.detail === undefined ? {} : { detail: known.detail }),
    headers: Object.fromEntries(
      Object.entries(response.headers).filter(
        ([name]) => name !== "content-type" && name !== "content-length"
      )
    )
  })
}

/** What a cause carries: its typed failures and its defects. */
const errorsOf = (cause: Cause.Cause<unknown>): Array<unknown> =>
  cause.reasons.flatMap((reason) =>
    Cause.isFailReason(reason) ? [reason.error] : Cause.isDieReason(reason) ? [reason.defect] : []
  )

export const isBodyTooLarge = (cause: Cause.Cause<unknown>) =>
  errorsOf(cause).some(
    (error) => (error as { reason?: { reason?: unknown } } | undefined)?.reason?.reason === "BodyTooLarge"
  )

/**
 * SQL states of a server that is going away or not taking us, which the driver leaves unclassified:
 * class 57P (admin or crash shutdown, cannot connect now) and 53300 (too many connections).
 */
const unavailableSqlState = /^(57P0[1-3]|53300)$/

const sqlStateOf = (cause: unknown) =>
  typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : ""

/**
 * The database is down, refusing us, or did not answer in time (a statement or lock timeout its
 * settings impose, e.g. a role's `statement_timeout`, while a lock is held elsewhere): the client
 * should retry, and this is not a bug.
 */
export const isDatabaseUnavailable = (cause: Cause.Cause<unknown>) =>
  errorsOf(cause).some((error) => {
    if (!SqlError.isSqlError(error)) return false
    const reason = error.reason
    switch (reason._tag) {
      case "ConnectionError":
      case "AuthenticationError":
      case "StatementTimeoutError":
      case "LockTimeoutError":
        return true
      case "UnknownError":
        // whatever the server answers while we connect (e.g. a database not accepting connections)
        return reason.operation === "connect" || unavailableSqlState.test(sqlStateOf(reason.cause))
      default:
        return false
    }
  })

export const databaseUnavailable = (cause: Cause.Cause<unknown>) =>
  Effect.as(
    Effect.logWarning("the database is unavailable", cause),
    problemResponse({
      status: 503,
      code: "database_unavailable",
      title: "Temporarily unavailable",
      detail: "The gateway cannot reach its database, or it did not answer in time; retry shortly",
      headers: { "retry-after": "5" }
    })
  )

export const internalError = (cause: Cause.Cause<unknown>) =>
  Effect.as(
    Effect.logError("request failed", cause),
    problemResponse({ status: 500, code: "internal_error", title: "Internal server error" })
  )

/** Every error a capability's service can fail with that the public API answers. */
export type CapabilityError =
  | InvalidCursor
  | ChannelNotFound
  | ChannelStateConflict
  | ChannelOperationPaced
  | QrUnavailable
  | CustomerNotFound
  | ApiKeyNotFound
  | PlanLimitExceeded
  | BindingChannelNotFound
  | CreatedKeyRevoked
  | AuthenticationFailed
  | RateLimitExceeded
  | FailedAuthenticationLimitExceeded
  | WebhookEndpointNotFound
  | DeliveryNotFound
  | DeliveryInFlight
  | EndpointChannelNotFound
  | WebhookUrlRefused
  | WebhookEndpointDisabled
  | CreatedSecretReplaced
  | MessageNotFound
  | ReferencedMessageNotFound
  | MediaLinkRefused
  | MessageStateConflict

/** What a caller can do instead, for a channel whose status refuses what was asked. */
const conflictAdvice = ({ channelId, status, action }: ChannelStateConflict) => {
  const path = `/v1/channels/${channelId}`
  switch (action) {
    case "connect":
      return status === "pairing"
        ? `The channel is pairing already: scan its QR (GET ${path}/qr) or type its pairing_code; to start over, POST ${path}/logout, then connect again`
        : `The channel is ${status}: it is linked to a phone already; to link another, POST ${path}/logout, then connect again`
    case "log out":
    case "restart":
      return `The channel is ${status}: it has no connection to ${action}; connect it with POST ${path}/connect`
    case "send":
      return `The channel is ${status}: it is linked to no phone, and a message for it would wait for whichever phone links it next; link one with POST ${path}/connect, then send`
  }
}

/** Why there is no QR to scan, and what would give one. */
const qrAdvice = ({ channelId, status, reason, statusReason }: QrUnavailable) => {
  const path = `/v1/channels/${channelId}`
  switch (reason) {
    case "not_pairing":
      return `The channel is ${status}${statusReason === null ? "" : ` (${statusReason})`}, not pairing: POST ${path}/connect with {"method":"qr"}, then read its QR here`
    case "linked":
      return `The channel is ${status}: it is linked to a phone and needs no QR; to link another phone, POST ${path}/logout, then connect with {"method":"qr"}`
    case "pairing_by_code":
      return `The channel pairs by code, not by QR: type its pairing_code (GET ${path}) into WhatsApp on the phone; to pair by QR instead, POST ${path}/logout, then connect with {"method":"qr"}`
    case "not_yet":
      return statusReason === null
        ? "No QR code yet: WhatsApp has not sent the next code; retry in a few seconds"
        : `No QR code yet: the last connection to WhatsApp ended (${statusReason}); the gateway tries again, retry in a few seconds`
  }
}

const authenticationProblems = {
  missing: { code: "missing_api_key", detail: "Send Authorization: Bearer wiu_..." },
  malformed: { code: "malformed_api_key", detail: "API keys look like wiu_ followed by 43 characters" },
  unknown_or_revoked: { code: "invalid_api_key", detail: "The API key is unknown or revoked" },
  suspended: { code: "customer_suspended", detail: "The customer account is suspended" }
} as const

/** Which pace was exceeded, and what works meanwhile. */
const pacingAdvice = ({ limit, max, retryAfterSeconds }: ChannelOperationPaced) => {
  const retry = `retry in ${retryAfterSeconds} s (Retry-After)`
  switch (limit) {
    case "lifecycle_operations_per_minute":
      return `A channel may be connected, restarted or logged out ${max} times a minute: ${retry}`
    case "lifecycle_operations_per_customer_per_minute":
      return `The plan allows ${max} channel creates, deletes, connects, restarts and logouts a minute (${lifecycleOperationsPerMinute} for each channel it allows): ${retry}`
    case "pairing_codes_per_channel_per_hour":
      return `The plan allows ${max} pairing codes per channel an hour: ${retry}, or connect with {"method":"qr"}`
    case "pairing_codes_per_customer_per_day":
      return `The plan allows ${max} pairing codes a day: ${retry}, or connect with {"method":"qr"}`
  }
}

/** The one place where what a capability refuses becomes the problem the API answers. */
const problems = {
  InvalidCursor: () =>
    new InvalidRequest({
      detail: "The cursor was not handed out by this list",
      errors: [{ path: "query.cursor", message: "must be a next_cursor value from a previous page" }]
    }),
  ChannelNotFound: () => new NotFound({ detail: "No such channel" }),
  ChannelStateConflict: (error) =>
    new InvalidState({ detail: conflictAdvice(error), current_status: error.status }),
  ChannelOperationPaced: (error) =>
    new RateLimited({ detail: pacingAdvice(error), retry_after: error.retryAfterSeconds }),
  QrUnavailable: (error) => new InvalidState({ detail: qrAdvice(error), current_status: error.status }),
  CustomerNotFound: () => new NotFound({ detail: "No such customer" }),
  ApiKeyNotFound: () => new NotFound({ detail: "No such API key" }),
  PlanLimitExceeded: (error) =>
    new PlanLimitReached({
      detail: error.message,
      limit: error.limit,
      max: error.max
    }),
  BindingChannelNotFound: (error) =>
    new InvalidRequest({
      detail: "The key cannot be bound to that channel",
      errors: [{ path: "body.channel_id", message: `no such channel: ${error.channelId}` }]
    }),
  CreatedKeyRevoked: (error) =>
    new IdempotentAnswerRevoked({
      detail: `The key ${error.keyId} this request created has been revoked; its plaintext is not shown again`,
      resource_id: error.keyId
    }),
  AuthenticationFailed: (error) => new Unauthorized(authenticationProblems[error.reason]),
  RateLimitExceeded: (error) =>
    new RateLimited({
      detail: `The plan allows ${error.requestsPerSecond} requests per second, across all the customer's keys`,
      retry_after: error.retryAfterSeconds
    }),
  FailedAuthenticationLimitExceeded: (error) =>
    new TooManyFailedAuthentications({
      detail: "Too many requests from this address failed to authenticate; retry later with a valid key",
      retry_after: error.retryAfterSeconds
    }),
  WebhookEndpointNotFound: () => new NotFound({ detail: "No such webhook endpoint" }),
  DeliveryNotFound: () => new NotFound({ detail: "No such delivery" }),
  EndpointChannelNotFound: () => new NotFound({ detail: "No such channel" }),
  DeliveryInFlight: () =>
    new InvalidState({
      detail:
        "An attempt of this delivery is in flight (at most 15 seconds): redeliver it once that attempt has ended",
      current_status: "pending"
    }),
  WebhookUrlRefused: (error) =>
    new InvalidRequest({
      detail: `The gateway will not post to this URL: ${error.detail}`,
      errors: [{ path: "body.url", message: `${error.detail} (${error.reason})` }]
    }),
  WebhookEndpointDisabled: (error) =>
    new InvalidState({
      detail: `The endpoint is disabled: enable it first with PATCH /v1/webhooks/${error.endpointId} {"enabled": true}`,
      current_status: "disabled"
    }),
  CreatedSecretReplaced: (error) =>
    new IdempotentAnswerRevoked({
      detail: `The endpoint ${error.endpointId} this request created was deleted or its secret rotated since; the secret is not shown again`,
      resource_id: error.endpointId
    }),
  MessageNotFound: () => new NotFound({ detail: "No such message" }),
  ReferencedMessageNotFound: (error) =>
    new InvalidRequest({
      detail: `This channel holds no message ${error.messageId}`,
      errors: [{ path: error.path, message: "must name a message of this channel" }]
    }),
  MediaLinkRefused: (error) =>
    new InvalidRequest({
      detail: `The gateway will not fetch media from this link: ${error.detail}`,
      errors: [{ path: error.path, message: `${error.detail} (${error.reason})` }]
    }),
  MessageStateConflict: (error) => new InvalidState({ detail: error.detail, current_status: error.status })
} satisfies {
  readonly [Tag in CapabilityError["_tag"]]: (
    error: Extract<CapabilityError, { readonly _tag: Tag }>
  ) => unknown
}

const problemFor = (error: CapabilityError) =>
  (problems[error._tag] as (error: CapabilityError) => unknown)(error)

const isCapabilityError = (error: unknown): error is CapabilityError =>
  typeof error === "object" &&
  error !== null &&
  "_tag" in error &&
  typeof error._tag === "string" &&
  Object.hasOwn(problems, error._tag)

/** The problem each capability error becomes; anything else passes through. */
export type ProblemOf<E> = E extends { readonly _tag: infer Tag extends keyof typeof problems }
  ? ReturnType<(typeof problems)[Tag]>
  : E

/** The problem a capability error becomes. */
export const problemOf = <E extends CapabilityError>(error: E) => problemFor(error) as ProblemOf<E>

/** Answers a handler's capability errors as the API's problems. */
export const answerProblems = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.mapError(effect, (error) => (isCapabilityError(error) ? problemFor(error) : error)) as Effect.Effect<
    A,
    ProblemOf<E>,
    R
  >
