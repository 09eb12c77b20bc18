import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Api } from "@whatisup/domain"
import { Context, Effect, Layer } from "effect"
import { HttpMiddleware, HttpRouter, HttpServer } from "effect/http"
import { HttpApiBuilder, HttpApiScalar } from "effect/http-api"
import { IpNetwork } from "effect/net"
import { GatewayConfigService } from "../config/config.ts"
import { layerConsole } from "./console.ts"
import { createPublicListener } from "./listener.ts"
import { EventStreams } from "../events/eventStreams.ts"
import { layerAuditHttp } from "./audit.ts"
import { layerAuthorization } from "./authorization.ts"
import { layerChannelsHttp } from "./channels.ts"
import { layerEventsHttp } from "./events.ts"
import { layerMessagesHttp } from "./messages.ts"
import { layerPayloadFields, layerRequestPipeline, layerRequestValidation } from "./pipeline.ts"
import { layerSystemHttp } from "./system.ts"
import { layerApiKeysHttp, layerMeHttp } from "./tenancy.ts"
import { layerWebhooksHttp } from "./webhooks.ts"

export const layerApiRoutes = HttpApiBuilder.layer(Api, { openapiPath: "/openapi.json" }).pipe(
  Layer.provide([
    layerSystemHttp,
    layerMeHttp,
    layerApiKeysHttp,
    layerChannelsHttp,
    layerMessagesHttp,
    layerEventsHttp,
    layerWebhooksHttp,
    layerAuditHttp
  ])
)

export const layerPublicRoutes = Layer.mergeAll(
  layerApiRoutes,
  HttpApiScalar.layer(Api, {
    path: "/docs",
    scalar: { authentication: { preferredSecurityScheme: "bearer" } }
  }),
  layerConsole,
  layerRequestPipeline
)

/**
 * The API's middleware: given to the listener rather than to the routes, so that each request's
 * context has them from the server's and they need not be added to it (see `serveRoutes`).
 */
export const layerRouteMiddleware = Layer.mergeAll(
  layerAuthorization,
  layerRequestValidation,
  layerPayloadFields
)

/**
 * How many services a request's context keeps as additions to the server's before it is copied
 * whole. A request adds some 20 (its request, route, ids, caller, the handler's own services...); at
 * Effect's default of 8, each request copied the server's whole context (some 45 services) once.
 */
const requestContextDepth = 32

/**
 * Serves `routes` on the `HttpServer` it is given, without Effect's request logger (the request
 * pipeline logs) or listen log, each request's context a few additions to the server's. A handler's
 * services that the server's context lacks are added to each request's (see Effect's patched
 * `HttpApiBuilder`): the fewer, the cheaper a request.
 */
export const serveRoutes = <A, E, R>(routes: Layer.Layer<A, E, R>) => {
  const serve = HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true })
  return Layer.fromBuild((memoMap, scope) =>
    Layer.buildWithMemoMap(serve, memoMap, scope).pipe(
      Effect.updateContext((context: Context.Context<never>) =>
        Context.makeUnsafe(context.mapUnsafe, { maxDepth: requestContextDepth })
      )
    )
  )
}

/** Behind the proxies the operator names, the client is the address they forward, not theirs. */
const layerClientAddress = (trustedProxies: ReadonlyArray<string>) =>
  trustedProxies.length === 0
    ? Layer.empty
    : HttpRouter.middleware(
        HttpMiddleware.xForwardedHeaders({
          trustedProxies: trustedProxies.map((network) => IpNetwork.fromStringUnsafe(network))
        }),
        { global: true }
      )

/** Where the public listener is bound, as the operating system reports it (`http://0.0.0.0:8080`). */
export class PublicAddress extends Context.Service<PublicAddress, string>()("whatisup/PublicAddress") {}

/**
 * Built once the listener serves, so released before it closes: the listener's close waits for open
 * connections, and an event stream would hold its connection open until the grace period ends.
 */
const layerEventStreamsEndFirst = Layer.effectDiscard(
  Effect.flatMap(EventStreams, (streams) => Effect.addFinalizer(() => streams.endAll))
)

/** The public listener on HOST:PORT. */
export const layerPublicServer = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* GatewayConfigService
    const routes = Layer.merge(layerPublicRoutes, layerClientAddress(config.trustedProxies))
    return layerEventStreamsEndFirst.pipe(
      Layer.provideMerge(
        Layer.merge(
          serveRoutes(routes).pipe(Layer.provide(layerRouteMiddleware)),
          Layer.effect(
            PublicAddress,
            Effect.map(HttpServer.HttpServer, (server) => HttpServer.formatAddress(server.address))
          )
        ).pipe(
          Layer.provide(NodeHttpServer.layer(createPublicListener, { port: config.port, host: config.host }))
        )
      )
    )
  })
)
