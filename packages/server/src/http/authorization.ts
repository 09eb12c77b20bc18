import { Authorization, Caller } from "@whatisup/domain"
import { Effect, Layer, Option, Redacted } from "effect"
import { HttpEffect, HttpServerRequest, HttpServerResponse } from "effect/http"
import { Authentication } from "../tenancy/authentication.ts"
import { answerProblems } from "./problems.ts"

/** Bearer keys on every /v1 route: the caller is provided to the handler, or the request is refused. */
export const layerAuthorization = Layer.effect(
  Authorization,
  Effect.gen(function* () {
    const authentication = yield* Authentication
    return Authorization.of({
      bearer: (httpEffect, { credential }) =>
        HttpServerRequest.HttpServerRequest.use((request) =>
          authentication.authenticate(
            Redacted.value(credential),
            Option.getOrUndefined(request.remoteAddress)
          )
        ).pipe(
          Effect.tapError((error) =>
            error._tag === "RateLimitExceeded" || error._tag === "FailedAuthenticationLimitExceeded"
              ? HttpEffect.appendPreResponseHandler((_request, response) =>
                  Effect.succeed(
                    HttpServerResponse.setHeader(response, "retry-after", String(error.retryAfterSeconds))
                  )
                )
              : Effect.void
          ),
          answerProblems,
          Effect.flatMap((caller) => Effect.provideService(httpEffect, Caller, caller))
        )
    })
  })
)
