import { Api, Caller } from "@whatisup/domain"
import { Channel } from "@whatisup/domain"
import { Effect } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import * as QRCode from "qrcode"
import { Idempotency } from "./idempotency.ts"
import { actorOf, unboundCaller } from "./caller.ts"
import { type Access, Channels } from "../channels/channels.ts"
import { preferred } from "./accept.ts"

const accessOf = (caller: Caller["Service"]): Access => ({
  customerId: caller.customerId,
  onlyChannel: caller.channelId
})

const channelManager = unboundCaller("create or delete channels")

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
    const idempotency = yield* Idempotency
    return handlers
      .handle("create", ({ payload, headers }) =>
        Effect.gen(function* () {
          const caller = yield* channelManager
          return yield* idempotency.run(
            {
              customerId: caller.customerId,
              key: headers["idempotency-key"],
              request: ["POST /v1/channels", payload],
              response: Channel
            },
            channels.create(accessOf(caller), { name: payload.name ?? null, actor: actorOf(caller) })
          )
        })
      )
      .handle("list", ({ query }) =>
        Effect.flatMap(Caller, (caller) =>
          channels.list(accessOf(caller), { limit: query.limit, cursor: query.cursor })
        )
      )
      .handle("get", ({ params }) =>
        Effect.flatMap(Caller, (caller) => channels.get(accessOf(caller), params.id))
      )
      .handle("update", ({ params, payload }) =>
        Effect.flatMap(Caller, (caller) =>
          channels.rename(accessOf(caller), params.id, payload.name, actorOf(caller))
        )
      )
      .handle("delete", ({ params }) =>
        Effect.flatMap(channelManager, (caller) =>
          channels.remove(accessOf(caller), params.id, actorOf(caller))
        )
      )
      .handle("connect", ({ params, payload }) =>
        Effect.flatMap(Caller, (caller) =>
          Effect.map(channels.connect(accessOf(caller), params.id, payload, actorOf(caller)), (channel) =>
            channel.pairing_code === null
              ? { status: channel.status }
              : { status: channel.status, pairing_code: channel.pairing_code }
          )
        )
      )
      .handle("qr", ({ params }) =>
        Effect.flatMap(Caller, (caller) =>
          Effect.flatMap(channels.qr(accessOf(caller), params.id), qrResponse)
        )
      )
      .handle("logout", ({ params }) =>
        Effect.flatMap(Caller, (caller) => channels.logout(accessOf(caller), params.id, actorOf(caller)))
      )
      .handle("restart", ({ params }) =>
        Effect.flatMap(Caller, (caller) => channels.restart(accessOf(caller), params.id, actorOf(caller)))
      )
  })
)
