import { Api, Caller } from "@whatisup/domain"
import { Channel } from "@whatisup/domain"
import { Effect } from "effect"
import { HttpEffect, HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import * as QRCode from "qrcode"
import { idempotentCreate } from "./idempotency.ts"
import { answerProblems } from "./problems.ts"
import { actorOf, unboundCaller } from "./caller.ts"
import { type Access, Channels } from "../channels/channels.ts"
import type { ChannelOperationPaced } from "../channels/errors.ts"
import { preferred } from "./accept.ts"

const accessOf = (caller: Caller["Service"]): Access => ({
  customerId: caller.customerId,
  onlyChannel: caller.channelId
})

const channelManager = unboundCaller("create or delete channels")

/** A paced operation says when it may be asked again in `Retry-After`, as well as in the problem. */
const retryAfter = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.tapError(effect, (error) =>
    (error as { readonly _tag?: unknown })._tag === "ChannelOperationPaced"
      ? HttpEffect.appendPreResponseHandler((_request, response) =>
          Effect.succeed(
            HttpServerResponse.setHeader(
              response,
              "retry-after",
              String((error as ChannelOperationPaced).retryAfterSeconds)
            )
          )
        )
      : Effect.void
  )

/** The QR as an image when the client asks for one (curl -H 'Accept: image/png'), else JSON. */
const qrResponse = (qr: { readonly qr: string; readonly expires_at: string }) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const type = preferred(request.headers["accept"], ["application/json", "image/png", "image/svg+xml"])
    const headers = { "cache-control": "no-store", "x-qr-expires-at": qr.expires_at }
    if (type === "image/png") {
      const png = yield* Effect.promise(() => QRCode.toBuffer(qr.qr, { type: "png", margin: 2, width: 320 }))
      return HttpServerResponse.uint8Array(png, { contentType: "image/png", headers })
    }
    if (type === "image/svg+xml") {
      const svg = yield* Effect.promise(() => QRCode.toString(qr.qr, { type: "svg", margin: 2 }))
      return HttpServerResponse.text(svg, { contentType: "image/svg+xml", headers })
    }
    return qr
  })

export const layerChannelsHttp = HttpApiBuilder.group(Api, "channels", (handlers) =>
  Effect.gen(function* () {
    const channels = yield* Channels
    /** Runs a handler with the caller's access; its capability errors answer as problems. */
    const withAccess = <A, E, R>(
      use: (access: Access, caller: Caller["Service"]) => Effect.Effect<A, E, R>
    ) => Effect.flatMap(Caller, (caller) => use(accessOf(caller), caller)).pipe(retryAfter, answerProblems)
    return handlers
      .handle("create", (request) =>
        Effect.flatMap(channelManager, (caller) =>
          idempotentCreate(
            "POST /v1/channels",
            Channel,
            request,
            caller,
            channels.create(accessOf(caller), { name: request.payload.name ?? null, actor: actorOf(caller) })
          )
        ).pipe(retryAfter, answerProblems)
      )
      .handle("list", ({ query }) =>
        withAccess((access) => channels.list(access, { limit: query.limit, cursor: query.cursor }))
      )
      .handle("get", ({ params }) => withAccess((access) => channels.get(access, params.id)))
      .handle("update", ({ params, payload }) =>
        withAccess((access, caller) => channels.rename(access, params.id, payload.name, actorOf(caller)))
      )
      .handle("delete", ({ params }) =>
        Effect.flatMap(channelManager, (caller) =>
          channels.remove(accessOf(caller), params.id, actorOf(caller))
        ).pipe(retryAfter, answerProblems)
      )
      .handle("connect", ({ params, payload }) =>
        withAccess((access, caller) =>
          Effect.map(channels.connect(access, params.id, payload, actorOf(caller)), (channel) =>
            channel.pairing_code === null
              ? { status: channel.status }
              : { status: channel.status, pairing_code: channel.pairing_code }
          )
        )
      )
      .handle("qr", ({ params }) =>
        withAccess((access) => Effect.flatMap(channels.qr(access, params.id), qrResponse))
      )
      .handle("logout", ({ params }) =>
        withAccess((access, caller) => channels.logout(access, params.id, actorOf(caller)))
      )
      .handle("restart", ({ params }) =>
        withAccess((access, caller) => channels.restart(access, params.id, actorOf(caller)))
      )
  })
)
