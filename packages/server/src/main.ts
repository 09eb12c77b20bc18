import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Context, Effect, Exit, Layer, Option } from "effect"
import { loadConfig } from "./config/config.ts"
import { layerGateway } from "./gateway.ts"
import { layerLogging } from "./config/logging.ts"
import { PublicAddress } from "./http/server.ts"
import { whatsAppUrl } from "./whatsapp/baileysTransport.ts"

/** The message chain of the first failure, on one line: what an operator needs to act on. */
const oneLine = (cause: Cause.Cause<unknown>) => {
  const reason = cause.reasons.find((r) => Cause.isFailReason(r) || Cause.isDieReason(r))
  let error: unknown =
    reason === undefined
      ? undefined
      : Cause.isFailReason(reason)
        ? reason.error
        : (reason as { defect: unknown }).defect
  const parts: Array<string> = []
  for (let depth = 0; error !== undefined && error !== null && depth < 4; depth++) {
    const message = (error as { message?: unknown }).message
    if (typeof message === "string" && message !== "" && !parts.includes(message)) parts.push(message)
    error = (error as { cause?: unknown }).cause
  }
  return parts.join(": ").replaceAll("\n", " ") || "unknown failure"
}

const isConfigInvalid = (cause: Cause.Cause<unknown>) =>
  cause.reasons.some((r) => Cause.isFailReason(r) && (r.error as { _tag?: string })._tag === "ConfigInvalid")

const program = Effect.gen(function* () {
  const config = yield* loadConfig
  yield* Layer.launch(
    layerGateway(config).pipe(
      Layer.tap((services) => {
        // the address the operating system bound, which says whether other machines can reach it
        const api = Context.get(services, PublicAddress)
        return Effect.logInfo(`WhatIsUp gateway is listening on ${api}`).pipe(
          Effect.annotateLogs({
            api,
            docs: `${api}/docs`,
            console: `${api}/console`,
            admin: `http://${config.adminHost}:${config.adminPort}`,
            whatsapp: whatsAppUrl(config),
            database: Option.isSome(config.databaseUrl) ? "DATABASE_URL" : `embedded in ${config.dataDir}`
          })
        )
      })
    )
  ).pipe(
    Effect.tapCause((cause) =>
      Cause.hasInterruptsOnly(cause) || isConfigInvalid(cause)
        ? Effect.void
        : Effect.logError("the gateway stopped on a failure", cause)
    ),
    Effect.provide(layerLogging(config))
  )
})

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  teardown: (exit, onExit) => {
    if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) {
      // SIGTERM / SIGINT interrupt the program; a shutdown that released everything is a clean exit
      return onExit(0)
    }
    const configInvalid = isConfigInvalid(exit.cause)
    process.stderr.write(
      `whatisup: ${configInvalid ? "bad configuration" : "cannot run"}: ${oneLine(exit.cause)}\n`
    )
    onExit(configInvalid ? 78 : 1)
  }
})
