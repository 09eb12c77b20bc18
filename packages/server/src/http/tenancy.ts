import { Api, ApiKeyCreated, Caller } from "@whatisup/domain"
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Idempotency } from "./idempotency.ts"
import { ApiKeys } from "../tenancy/apiKeys.ts"
import { actorOf, unboundCaller } from "./caller.ts"
import { Customers } from "../tenancy/customers.ts"

const keyManager = unboundCaller("manage API keys")

export const layerMeHttp = HttpApiBuilder.group(Api, "me", (handlers) =>
  handlers.handle("get", () =>
    Effect.gen(function* () {
      const caller = yield* Caller
      const customer = yield* (yield* Customers).get(caller.customerId).pipe(Effect.orDie)
      return { customer, key_id: caller.keyId, channel_id: caller.channelId }
    })
  )
)

export const layerApiKeysHttp = HttpApiBuilder.group(Api, "apiKeys", (handlers) =>
  Effect.gen(function* () {
    const apiKeys = yield* ApiKeys
    const idempotency = yield* Idempotency
    return handlers
      .handle("create", ({ payload, headers }) =>
        Effect.gen(function* () {
          const caller = yield* keyManager
          return yield* idempotency.run(
            {
              customerId: caller.customerId,
              key: headers["idempotency-key"],
              request: ["POST /v1/api-keys", payload],
              response: ApiKeyCreated
            },
            apiKeys.create({
              customerId: caller.customerId,
              name: payload.name ?? null,
              channelId: payload.channel_id ?? null,
              actor: actorOf(caller)
            })
          )
        }).pipe(Effect.catchTag("NotFound", Effect.die))
      )
      .handle("list", ({ query }) =>
        Effect.flatMap(keyManager, (caller) =>
          apiKeys.list({ customerId: caller.customerId, limit: query.limit, cursor: query.cursor })
        )
      )
      .handle("revoke", ({ params }) =>
        Effect.flatMap(keyManager, (caller) =>
          apiKeys.revoke({ customerId: caller.customerId, keyId: params.id, actor: actorOf(caller) })
        )
      )
  })
)
