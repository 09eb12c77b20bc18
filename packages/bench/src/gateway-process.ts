/**
 * A gateway OS process for the benchmarks that measure the gateway against a baseline in a process
 * of its own (`phones`, `sends`): the real gateway, with the same environment as `npm start`, forked
 * with IPC and `--expose-gc`, answering the benchmark's memory readings as the plain processes do.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit, Layer } from "effect"
import { loadConfig } from "../../server/src/config/config.ts"
import { layerLogging } from "../../server/src/config/logging.ts"
import { layerGateway } from "../../server/src/gateway.ts"
import { answerMemoryRequests } from "./memoryReadings.ts"

answerMemoryRequests()

const program = Effect.gen(function* () {
  const config = yield* loadConfig
  yield* Layer.launch(layerGateway(config)).pipe(Effect.provide(layerLogging(config)))
})

NodeRuntime.runMain(program, {
  teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : 1)
})
