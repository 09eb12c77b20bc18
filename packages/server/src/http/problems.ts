import { InvalidRequest } from "@whatisup/domain"
import { Cause, Effect } from "effect"
import { HttpServerResponse } from "effect/http"
import type { HttpApiError } from "effect/http-api"
import { SchemaIssue } from "effect"

const slotNames: Record<HttpApiError.HttpApiSchemaError["kind"], string> = {
  Params: "path",
  Query: "query",
  Headers: "header",
  Payload: "body",
  Body: "response",
  ResponseHeaders: "response"
}

const formatter = SchemaIssue.makeFormatterStandardSchemaV1({
  leafHook: (issue) =>
    issue._tag === "UnexpectedKey"
      ? "is not a known field"
      : issue._tag === "MissingKey"
        ? "is required"
        : SchemaIssue.defaultLeafHook(issue)
})

/** Every offending field of a request that failed to decode, named by where it was sent. */
export const invalidRequestOf = (error: HttpApiError.HttpApiSchemaError) => {
  const slot = slotNames[error.kind]
  const issues = formatter(error.cause.issue).issues
  const byPath = new Map<string, Array<string>>()
  for (const issue of issues) {
    const segments = (issue.path ?? []).map((segment) =>
      String(typeof segment === "object" ? segment.key : segment)
    )
    const path = [slot, ...segments].join(".")
    const messages = byPath.get(path) ?? []
    if (!messages.includes(issue.message)) messages.push(issue.message)
    byPath.set(path, messages)
  }
  return new InvalidRequest({
    detail: "The request has invalid fields; see errors",
    errors: [...byPath].map(([path, messages]) => ({ path, message: messages.join("; ") }))
  })
}

const problemTypeBase = "https://whatisup.dev/problems/"

/** A problem+json response built outside a typed endpoint (unknown routes, oversized bodies, defects). */
export const problemResponse = (options: {
  readonly status: number
  readonly code: string
  readonly title: string
  readonly detail?: string
  readonly headers?: Record<string, string>
}) =>
  HttpServerResponse.jsonUnsafe(
    {
      type: `${problemTypeBase}${options.code.replaceAll("_", "-")}`,
      status: options.status,
      title: options.title,
      code: options.code,
      ...(options.detail === undefined ? {} : { detail: options.detail })
    },
    { status: options.status, contentType: "application/problem+json", headers: options.headers ?? {} }
  )

const generic: Record<number, { code: string; title: string; detail?: string }> = {
  400: { code: "invalid_request", title: "The request is invalid" },
  404: { code: "route_not_found", title: "Not found", detail: "No such route; see /docs" },
  405: { code: "method_not_allowed", title: "Method not allowed" },
  406: { code: "not_acceptable", title: "Not acceptable" },
  413: {
    code: "payload_too_large",
    title: "The request body is too large",
    detail: "Bodies are limited to 1 MiB"
  },
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

const unavailableReasons = new Set(["ConnectionError", "AuthenticationError"])

/** The database is down or refusing us: the client should retry, and this is not a bug. */
export const isDatabaseUnavailable = (cause: Cause.Cause<unknown>) =>
  errorsOf(cause).some((error) => {
    const sqlError = error as { _tag?: unknown; message?: unknown; reason?: { _tag?: unknown } } | undefined
    return (
      sqlError?._tag === "SqlError" &&
      (unavailableReasons.has(String(sqlError.reason?._tag)) ||
        // a refused connection (shutting down, not accepting connections) is classified by its SQL state
        /failed to connect|connection (?:closed|ended|terminated)/i.test(String(sqlError.message)))
    )
  })

export const databaseUnavailable = (cause: Cause.Cause<unknown>) =>
  Effect.as(
    Effect.logWarning("the database is unavailable", cause),
    problemResponse({
      status: 503,
      code: "database_unavailable",
      title: "Temporarily unavailable",
      detail: "The gateway cannot reach its database; retry shortly",
      headers: { "retry-after": "5" }
    })
  )

export const internalError = (cause: Cause.Cause<unknown>) =>
  Effect.as(
    Effect.logError("request failed", cause),
    problemResponse({ status: 500, code: "internal_error", title: "Internal server error" })
  )
