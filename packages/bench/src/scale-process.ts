/**
 * A gateway OS process for the ownership-at-scale benchmark: the real gateway, with a WhatsApp that
 * logs every channel in at once and does nothing else, so that the database work measured is the
 * gateway's own. Run with the same environment as `npm start`.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit, Layer, Queue } from "effect"
import { TransportEvent, WhatsAppTransport } from "../../server/src/channels/transport.ts"
import { loadConfig } from "../../server/src/config/config.ts"
import { layerLogging } from "../../server/src/config/logging.ts"
import { layerGateway } from "../../server/src/gateway.ts"

const layerLoggedIn = Layer.succeed(
  WhatsAppTransport,
  WhatsAppTransport.of({
    connect: () =>
      Effect.gen(function* () {
        const events = yield* Queue.unbounded<TransportEvent>()
        yield* Queue.offer(events, TransportEvent.Open({ phoneNumber: "+15550000000" }))
        return {
          events,
          prepare: () => Effect.succeed(new Uint8Array()),
          send: () => Effect.void,
          markRead: () => Effect.void,
          logout: Effect.void
        }
      })
  })
)

const program = Effect.gen(function* () {
  const config = yield* loadConfig
  yield* Layer.launch(layerGateway(config, layerLoggedIn)).pipe(Effect.provide(layerLogging(config)))
})

NodeRuntime.runMain(program, {
  teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : 1)
})
