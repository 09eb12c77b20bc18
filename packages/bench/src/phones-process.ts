/**
 * A gateway OS process for the `phones` benchmark: the real gateway on real Baileys (the WhatsApp of
 * `WHATISUP_WA_WS_URL`, the simulator in the benchmark's process), in a process of its own like the
 * bare Baileys baseline, and answering the benchmark's memory readings the same way. Run with the
 * same environment as `npm start`, forked with IPC and `--expose-gc`.
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
