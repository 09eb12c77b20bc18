import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { AdminRpcs } from "@whatisup/domain"
import { Effect, Layer, Option } from "effect"
import { HttpRouter } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { RpcSerialization, RpcServer } from "effect/rpc"
import { createServer } from "node:http"
import { GatewayConfigService } from "../config/config.ts"
import { layerAdminGuard } from "./guard.ts"
import { layerAdminHandlers } from "./handlers.ts"
import { layerOperatorAuth, operatorToken } from "./operatorToken.ts"
import { layerProcessMetrics } from "./processMetrics.ts"

/**
 * The operator listener (`WHATISUP_ADMIN_LISTEN`): the admin RPC at /rpc and Prometheus text at
 * /metrics (with the process's own memory, CPU and event-loop gauges), each behind a token checked
 * before the request's body is read.
 */
export const layerAdminServer = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* GatewayConfigService
    const token = yield* operatorToken(config)
    const routes = Layer.mergeAll(
      RpcServer.layerHttp({ group: AdminRpcs, path: "/rpc", protocol: "http" }),
      PrometheusMetrics.layerHttp({ path: "/metrics", prefix: "whatisup" }),
      layerAdminGuard({ operator: token, metrics: Option.toArray(config.metricsToken) })
    ).pipe(Layer.provide([layerAdminHandlers, layerOperatorAuth(token), RpcSerialization.layerNdjson]))
    return HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provide(NodeHttpServer.layer(createServer, { port: config.adminPort, host: config.adminHost })),
      Layer.merge(layerProcessMetrics)
    )
  })
)
