import { Api, Caller } from "@whatisup/domain"
import { Channel } from "@whatisup/domain"
import { Effect } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import * as QRCode from "qrcode"
import { Idempotency } from "../http/idempotency.ts"
import { actorOf, unboundCaller } from "../tenancy/caller.ts"
import { type Access, Channels } from "./channels.ts"
import { EventLog } from "./eventLog.ts"

const accessOf = (caller: Caller["Service"]): Access => ({
  customerId: caller.customerId,
  onlyChannel: caller.channelId
})

const channelManager = unboundCaller("create or delete channels")

/** The media type the client prefers among those offered, by the Accept header's q-values. */
const preferred = (accept: string | undefined, offered: ReadonlyArray<string>) => {
  let best = offered[0]!
  let bestQ = accept === undefined || accept === "" ? 1 : 0
  for (const part of (accept ?? "").split(",")) {
    const [range = "", ...params] = part.trim().split(";")
    const q = Number(
      params
        .map((p) => p.trim())
        .find((p) => p.startsWith("q="))
        ?.slice(2) ?? 1
    )
    for (const type of offered) {
      const matches = range === type || range === "*/*" || range === `${type.split("/")[0]}/*`
      // an exact type outranks a wildcard of the same weight
      if (matches && (q > bestQ || (q === bestQ && range === type && q > 0))) {
        best = type
        bestQ = q
      }
    }
  }
  return bestQ > 0 ? best : offered[0]!
}

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

export const layerEventsHttp = HttpApiBuilder.group(Api, "events", (handlers) =>
  Effect.gen(function* () {
    const events = yield* EventLog
    return handlers.handle("list", ({ query }) =>
      Effect.gen(function* () {
        const caller = yield* Caller
        // a channel-bound key sees its own channel's events only
        if (
          caller.channelId !== null &&
          query.channel_id !== undefined &&
          query.channel_id !== caller.channelId
        ) {
          return { data: [], next_cursor: null }
        }
        return yield* events.list({
          customerId: caller.customerId,
          channelId: caller.channelId ?? query.channel_id,
          type: query.type,
          limit: query.limit,
          cursor: query.cursor
        })
      })
    )
  })
)
