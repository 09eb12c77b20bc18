import { ByteSize, Cause, Effect, type Redacted, type Types } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { tokensMatch } from "./operatorToken.ts"

/** Admin calls are small; nothing larger is read. */
export const maxAdminBodyBytes = 1024 * 1024

export interface AdminTokens {
  /** Everything on the admin listener. */
  readonly operator: Redacted.Redacted<string>
  /** `/metrics` only, for scrapers. */
  readonly metrics: ReadonlyArray<Redacted.Redacted<string>>
}

/**
 * A refusal sent before the body is read; `connection: close` has Node hang up once it is sent,
 * rather than hold the connection open with the unread body waiting.
 */
const refuse = (status: 401 | 413, detail: string) =>
  HttpServerResponse.jsonUnsafe(
    {
      status,
      title: status === 401 ? "Authentication failed" : "The request body is too large",
      code: status === 401 ? "operator_unauthorized" : "payload_too_large",
      detail
    },
    {
      status,
      contentType: "application/problem+json",
      headers: {
        connection: "close",
        ...(status === 401 ? { "www-authenticate": 'Bearer realm="whatisup-admin"' } : {})
      }
    }
  )

const bearerOf = (header: string | undefined) =>
  header !== undefined && header.startsWith("Bearer ") ? header.slice("Bearer ".length).trim() : ""

const isBodyTooLarge = (cause: Cause.Cause<unknown>) =>
  cause.reasons.some(
    (reason) =>
      Cause.isFailReason(reason) &&
      (reason.error as { reason?: { reason?: unknown } } | undefined)?.reason?.reason === "BodyTooLarge"
  )

/**
 * Every request to the admin listener: the token from the `Authorization` header (the operator's,
 * or for `/metrics` a metrics token), then the body's declared size, both before a byte of the body
 * is read; a body that turns out larger than declared stops being read at the limit.
 */
export const layerAdminGuard = (tokens: AdminTokens) =>
  HttpRouter.middleware(
    (httpEffect) =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const presented = bearerOf(request.headers["authorization"])
        const path = request.url.split("?")[0]
        const accepted = path === "/metrics" ? [tokens.operator, ...tokens.metrics] : [tokens.operator]
        // every token is compared, so the time taken says nothing about which one nearly matched
        const matches = accepted.map((token) => presented !== "" && tokensMatch(token, presented))
        if (!matches.includes(true)) {
          return refuse(401, "Send Authorization: Bearer <operator token>")
        }
        if (Number(request.headers["content-length"] ?? 0) > maxAdminBodyBytes) {
          return refuse(413, `Admin request bodies are limited to ${maxAdminBodyBytes} bytes`)
        }
        return yield* httpEffect.pipe(
          Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(maxAdminBodyBytes)),
          Effect.catchCause((cause) =>
            isBodyTooLarge(cause)
              ? Effect.succeed(refuse(413, `Admin request bodies are limited to ${maxAdminBodyBytes} bytes`))
              : Effect.failCause(cause)
          )
        )
      }) as Effect.Effect<
        HttpServerResponse.HttpServerResponse,
        Types.unhandled,
        HttpServerRequest.HttpServerRequest
      >,
    { global: true }
  )
