import { Authorization, Caller } from "@whatisup/domain"
import { Effect, Layer, Redacted } from "effect"
import { HttpEffect, HttpServerResponse } from "effect/http"
import { Authentication } from "../tenancy/authentication.ts"
import { answerProblems } from "./problems.ts"

/** Bearer keys on every /v1 route: the caller is provided to the handler, or the request is refused. */
export const layerAuthorization = Layer.effect(
  Authorization,
  Effect.gen(function* () {
    const authentication = yield* Authentication
    return Authorization.of({
      bearer: (httpEffect, { credential }) =>
        authentication.authenticate(Redacted.value(credential)).pipe(
          Effect.tapError((error) =>
            error._tag === "RateLimitExceeded"
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
