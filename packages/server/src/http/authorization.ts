import { Authorization, Caller } from "@whatisup/domain"
import { Context, Effect, Layer, Option, Redacted } from "effect"
import { HttpEffect, HttpServerRequest, HttpServerResponse } from "effect/http"
import type {
  AuthenticationFailed,
  FailedAuthenticationLimitExceeded,
  RateLimitExceeded
} from "../tenancy/errors.ts"
import { Authentication } from "../tenancy/authentication.ts"
import { problemOf } from "./problems.ts"

/** A refused request's problem; one refused for a while says in `Retry-After` for how long. */
const refused = (error: AuthenticationFailed | RateLimitExceeded | FailedAuthenticationLimitExceeded) => {
  const problem = Effect.fail(problemOf(error))
  return error._tag === "AuthenticationFailed"
    ? problem
    : Effect.andThen(
        HttpEffect.appendPreResponseHandler((_request, response) =>
          Effect.succeed(
            HttpServerResponse.setHeader(response, "retry-after", String(error.retryAfterSeconds))
          )
        ),
        problem
      )
}

/**
 * Bearer keys on every /v1 route: the caller is provided to the handler, or the request is refused.
 * In few steps: it runs on every request.
 */
export const layerAuthorization = Layer.effect(
  Authorization,
  Effect.gen(function* () {
    const authentication = yield* Authentication
    return Authorization.of({
      bearer: (httpEffect, { credential }) =>
        Effect.withFiber((fiber) => {
          const request = Context.getUnsafe(fiber.context, HttpServerRequest.HttpServerRequest)
          return Effect.matchEffect(
            authentication.authenticate(
              Redacted.value(credential),
              Option.getOrUndefined(request.remoteAddress)
            ),
            {
              onSuccess: (caller) => Effect.provideService(httpEffect, Caller, caller),
              onFailure: refused
            }
          )
        })
    })
  })
)
