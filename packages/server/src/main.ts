import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer, Option, Runtime } from "effect"
import { loadConfig } from "./config.ts"
import { layerGateway } from "./gateway.ts"
import { layerLogging } from "./logging.ts"

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
      // EX_CONFIG: everything opened so far has been released
      process.exit(78)
    })
  )
)

NodeRuntime.runMain(program, {
  // SIGTERM / SIGINT interrupt the program; a shutdown that released everything is a clean exit
  teardown: (exit, onExit) =>
    Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)
      ? onExit(0)
      : Runtime.defaultTeardown(exit, onExit)
})
