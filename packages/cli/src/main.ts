#!/usr/bin/env node
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Cause, Effect } from "effect"
import { Command } from "effect/cli"
import { adminTarget, layerAdminClient } from "./adminClient.ts"
import { whatisup } from "./commands.ts"
import { explain } from "./errors.ts"

const target = adminTarget(process.env)

const program = Command.runWith(whatisup, { version: "0.1.0" })(process.argv.slice(2)).pipe(
  Effect.timeout("60 seconds"),
  Effect.provide(layerAdminClient(target)),
  Effect.provide(NodeServices.layer),
  Effect.catchCause((cause) =>
    Effect.sync(() => {
      const line = explain(cause, target)
      if (line !== null) process.stderr.write(`whatisup: ${line}\n`)
      process.exitCode = 1
    })
  )
)

Effect.runPromise(program).then(
  () => process.exit(),
  (error) => {
    process.stderr.write(`whatisup: ${Cause.pretty(Cause.die(error)).split("\n")[0]}\n`)
    process.exit(1)
  }
)
