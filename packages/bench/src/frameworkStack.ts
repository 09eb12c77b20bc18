import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Redacted } from "effect"
import { HttpServer } from "effect/http"
import { createServer } from "node:http"
import { layerTracingOff } from "../../server/src/config/logging.ts"
import { layerRequestPipeline } from "../../server/src/http/pipeline.ts"
import { layerRouteMiddleware, serveRoutes } from "../../server/src/http/server.ts"
import { layerAuthentication } from "../../server/src/tenancy/authentication.ts"

/**
 * A one-endpoint API (`HttpApiBuilder.layer` of it, its handlers provided) served on 127.0.0.1 behind
 * the gateway's own HTTP stack: request pipeline, bearer keys through the real key cache and rate
 * limiter, validation. The database is read only to fill the key cache. Answers the address.
 */
export const frameworkStack = <E, R>(api: Layer.Layer<never, E, R>, databaseUrl: string) =>
  Effect.gen(function* () {
    // as the gateway serves: every service the handlers and middleware use is the listener's own
    const context = yield* Layer.build(
      serveRoutes(Layer.mergeAll(api, layerRequestPipeline)).pipe(
        Layer.provide(layerRouteMiddleware),
        Layer.provide(layerAuthentication),
        Layer.provide(PgClient.layer({ url: Redacted.make(databaseUrl), maxConnections: 2 })),
        Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
        Layer.provide(layerTracingOff)
      )
    )
    return HttpServer.formatAddress(Context.get(context, HttpServer.HttpServer).address)
  })
