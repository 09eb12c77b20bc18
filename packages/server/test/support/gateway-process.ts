/**
 * A gateway OS process for multi-process tests: the real gateway with the recording transport.
 * Run with the same environment as `npm start`.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit, Layer } from "effect"
import { loadConfig } from "../../src/config/config.ts"
import { layerGateway } from "../../src/gateway.ts"
import { layerLogging } from "../../src/config/logging.ts"
import { layerRecordingTransport } from "./recordingTransport.ts"

const program = Effect.gen(function* () {
  const config = yield* loadConfig
  const databaseUrl = process.env.DATABASE_URL!
  yield* Layer.launch(layerGateway(config, layerRecordingTransport(databaseUrl, config.nodeId))).pipe(
    Effect.provide(layerLogging(config))
  )
})

NodeRuntime.runMain(program, {
  teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : 1)
})
