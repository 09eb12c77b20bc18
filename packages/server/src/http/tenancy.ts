import { Api, ApiKeyCreated, Caller } from "@whatisup/domain"
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { ApiKeys } from "../tenancy/apiKeys.ts"
import { actorOf, unboundCaller } from "./caller.ts"
import { idempotentCreate } from "./idempotency.ts"
import { answerProblems } from "./problems.ts"

const keyManager = unboundCaller("manage API keys")

export const layerMeHttp = HttpApiBuilder.group(Api, "me", (handlers) =>
  handlers.handle("get", () =>
    // the customer as authenticated, without a query of its own
    Caller.useSync((caller) => ({
      customer: caller.customer,
      key_id: caller.keyId,
      channel_id: caller.channelId
    }))
  )
)

export const layerApiKeysHttp = HttpApiBuilder.group(Api, "apiKeys", (handlers) =>
  Effect.gen(function* () {
    const apiKeys = yield* ApiKeys
    return handlers
      .handle("create", (request) =>
        Effect.gen(function* () {
          const caller = yield* keyManager
          return yield* idempotentCreate(
            "POST /v1/api-keys",
            ApiKeyCreated,
            request,
            caller,
            apiKeys.create({
              customerId: caller.customerId,
              name: request.payload.name ?? null,
              channelId: request.payload.channel_id ?? null,
              actor: actorOf(caller)
            }),
            apiKeys.replayable
          )
        }).pipe(
          // the caller was just authenticated: its customer exists
          Effect.catchTag("CustomerNotFound", Effect.die),
          answerProblems
        )
      )
      .handle("list", ({ query }) =>
        Effect.flatMap(keyManager, (caller) =>
          apiKeys.list({ customerId: caller.customerId, limit: query.limit, cursor: query.cursor })
        ).pipe(answerProblems)
      )
      .handle("revoke", ({ params }) =>
        Effect.flatMap(keyManager, (caller) =>
          apiKeys.revoke({ customerId: caller.customerId, keyId: params.id, actor: actorOf(caller) })
        ).pipe(answerProblems)
      )
  })
)
