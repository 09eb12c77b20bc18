import { Authorization, Caller } from "@whatisup/domain"
import { Effect, Layer, Redacted } from "effect"
import { HttpEffect, HttpServerResponse } from "effect/http"
import { Authentication } from "../tenancy/authentication.ts"

export const layerAuthorization = Layer.effect(
  Authorization,
  Effect.gen(function* () {
    const authentication = yield* Authentication
    return Authorization.of({
      bearer: (httpEffect, { credential }) =>
        authentication.authenticate(Redacted.value(credential)).pipe(
          Effect.tapError((error) =>
            error._tag === "RateLimited"
              ? HttpEffect.appendPreResponseHandler((_request, response) =>
                  Effect.succeed(
                    HttpServerResponse.setHeader(response, "retry-after", String(error.retry_after))
                  )
                )
              : Effect.void
          ),
          Effect.flatMap((caller) => Effect.provideService(httpEffect, Caller, caller))
        )
    })
  })
)
