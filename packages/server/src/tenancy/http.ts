import { Api, ApiKeyCreated, Caller, Forbidden } from "@whatisup/domain"
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Idempotency } from "../http/idempotency.ts"
import { ApiKeys } from "./apiKeys.ts"
import { Customers } from "./customers.ts"

/** A key bound to one channel acts on that channel alone: it cannot manage keys. */
const unboundCaller = Effect.gen(function* () {
  const caller = yield* Caller
  if (caller.channelId !== null) {
    return yield* new Forbidden({ detail: "A key bound to a channel cannot manage API keys" })
  }
  return caller
})

const actorOf = (caller: Caller["Service"]) => ({ type: "api_key" as const, id: caller.keyId })

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
          const caller = yield* unboundCaller
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
        Effect.flatMap(unboundCaller, (caller) =>
          apiKeys.list({ customerId: caller.customerId, limit: query.limit, cursor: query.cursor })
        )
      )
      .handle("revoke", ({ params }) =>
        Effect.flatMap(unboundCaller, (caller) =>
          apiKeys.revoke({ customerId: caller.customerId, keyId: params.id, actor: actorOf(caller) })
        )
      )
  })
)
