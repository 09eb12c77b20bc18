import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Option } from "effect"
import { layerAdminServer } from "./admin/server.ts"
import { layerAudit } from "./audit/audit.ts"
import { type GatewayConfig, GatewayConfigService, loadConfig } from "./config.ts"
import { layerKeyRing } from "./crypto/keyRing.ts"
import { layerDatabase, layerMigrated } from "./db/client.ts"
import { layerIdempotency } from "./http/idempotency.ts"
import { layerPublicServer } from "./http/server.ts"
import { layerLogging } from "./logging.ts"
import { layerApiKeys } from "./tenancy/apiKeys.ts"
import { layerAuthentication } from "./tenancy/authentication.ts"
import { layerCustomers } from "./tenancy/customers.ts"

/** The whole gateway for one configuration: database (migrated first), services, both listeners. */
export const layerGateway = (config: GatewayConfig) => {
  const layerConfig = Layer.succeed(GatewayConfigService, config)
  const database = layerMigrated.pipe(Layer.provideMerge(layerDatabase), Layer.provide(layerConfig))
  const authentication = layerAuthentication
  const services = Layer.mergeAll(layerApiKeys, layerCustomers).pipe(
    Layer.provideMerge(Layer.mergeAll(layerAudit, authentication, layerIdempotency, layerKeyRing)),
    Layer.provideMerge(database),
    Layer.provideMerge(layerConfig)
  )
  return Layer.mergeAll(layerPublicServer, layerAdminServer).pipe(Layer.provideMerge(services))
}

const program = Effect.gen(function* () {
  const config = yield* loadConfig
  yield* Effect.gen(function* () {
    yield* Layer.launch(
      layerGateway(config).pipe(
        Layer.tap(() =>
          Effect.logInfo("WhatIsUp gateway is listening").pipe(
            Effect.annotateLogs({
              api: `http://${config.host === "0.0.0.0" ? "127.0.0.1" : config.host}:${config.port}`,
              docs: `http://${config.host === "0.0.0.0" ? "127.0.0.1" : config.host}:${config.port}/docs`,
              admin: `http://${config.adminHost}:${config.adminPort}`,
              database: Option.isSome(config.databaseUrl) ? "DATABASE_URL" : `embedded in ${config.dataDir}`
            })
          )
        )
      )
    )
  }).pipe(Effect.provide(layerLogging(config)))
}).pipe(
  Effect.catchTag("ConfigInvalid", (error) =>
    Effect.sync(() => {
      process.stderr.write(`whatisup: bad configuration: ${error.message}\n`)
      process.exitCode = 78
    })
  )
)

NodeRuntime.runMain(program, { disableErrorReporting: false })
