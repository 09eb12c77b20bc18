import { Api, Caller, WebhookEndpointWithSecret } from "@whatisup/domain"
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { DeliveryLog } from "../webhooks/deliveryLog.ts"
import { type EndpointAccess, WebhookEndpoints } from "../webhooks/endpoints.ts"
import { actorOf, unboundCaller } from "./caller.ts"
import { idempotentCreate } from "./idempotency.ts"
import { answerProblems } from "./problems.ts"
import { defaultSecretGraceSeconds } from "@whatisup/domain"

const accessOf = (caller: Caller["Service"]): EndpointAccess => ({
  customerId: caller.customerId,
  onlyChannel: caller.channelId
})

export const layerWebhooksHttp = HttpApiBuilder.group(Api, "webhooks", (handlers) =>
  Effect.gen(function* () {
    const endpoints = yield* WebhookEndpoints
    const deliveries = yield* DeliveryLog
    /** Runs a handler with the caller's access; its capability errors answer as problems. */
    const withAccess = <A, E, R>(
      use: (access: EndpointAccess, caller: Caller["Service"]) => Effect.Effect<A, E, R>
    ) => Effect.flatMap(Caller, (caller) => use(accessOf(caller), caller)).pipe(answerProblems)
    return handlers
      .handle("createForChannel", (request) =>
        withAccess((access, caller) =>
          // the URL is resolved before the idempotent transaction opens: no connection waits on DNS
          Effect.andThen(
            endpoints.vet(request.payload.url),
            idempotentCreate(
              `POST /v1/channels/${request.params.id}/webhooks`,
              WebhookEndpointWithSecret,
              request,
              caller,
              endpoints.create(access, request.params.id, request.payload, actorOf(caller)),
              endpoints.stillSigns
            )
          )
        )
      )
      .handle("listForChannel", ({ params, query }) =>
        withAccess((access) =>
          endpoints.list(access, { channelId: params.id, limit: query.limit, cursor: query.cursor })
        )
      )
      .handle("create", (request) =>
        Effect.flatMap(unboundCaller("create webhook endpoints for every channel"), (caller) =>
          Effect.andThen(
            endpoints.vet(request.payload.url),
            idempotentCreate(
              "POST /v1/webhooks",
              WebhookEndpointWithSecret,
              request,
              caller,
              // an endpoint for every channel names no channel that could be missing
              endpoints
                .create(accessOf(caller), null, request.payload, actorOf(caller))
                .pipe(Effect.catchTag("EndpointChannelNotFound", Effect.die)),
              endpoints.stillSigns
            )
          )
        ).pipe(answerProblems)
      )
      .handle("list", ({ query }) =>
        withAccess((access) =>
          endpoints
            .list(access, { limit: query.limit, cursor: query.cursor })
            .pipe(Effect.catchTag("EndpointChannelNotFound", Effect.die))
        )
      )
      .handle("get", ({ params }) => withAccess((access) => endpoints.get(access, params.id)))
      .handle("update", ({ params, payload }) =>
        withAccess((access, caller) => endpoints.update(access, params.id, payload, actorOf(caller)))
      )
      .handle("delete", ({ params }) =>
        withAccess((access, caller) => endpoints.remove(access, params.id, actorOf(caller)))
      )
      .handle("rotateSecret", ({ params, payload }) =>
        withAccess((access, caller) =>
          endpoints.rotateSecret(
            access,
            params.id,
            payload.grace_period_seconds ?? defaultSecretGraceSeconds,
            actorOf(caller)
          )
        )
      )
      .handle("test", ({ params }) =>
        withAccess((access, caller) => deliveries.test(access, params.id, actorOf(caller)))
      )
      .handle("recover", ({ params, payload }) =>
        withAccess((access, caller) =>
          Effect.map(deliveries.recover(access, params.id, payload.since, actorOf(caller)), (requeued) => ({
            requeued
          }))
        )
      )
      .handle("deliveries", ({ params, query }) =>
        withAccess((access) =>
          deliveries.list(access, params.id, {
            status: query.status,
            eventType: query.event_type,
            since: query.since,
            until: query.until,
            limit: query.limit,
            cursor: query.cursor
          })
        )
      )
      .handle("delivery", ({ params }) => withAccess((access) => deliveries.get(access, params.id)))
      .handle("redeliver", ({ params }) =>
        withAccess((access, caller) => deliveries.redeliver(access, params.id, actorOf(caller)))
      )
  })
)
