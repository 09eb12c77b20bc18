import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit, Runtime } from "effect"
import { actors } from "./actors.ts"
import { ScenarioFailed } from "./measure.ts"
import { phones } from "./phones.ts"
import { postgresServer } from "./postgres.ts"
import { publish, type Report } from "./report.ts"

interface Benchmark {
  readonly full: number
  readonly quick: number
  readonly run: (serverUrl: string, size: number) => Effect.Effect<Report, unknown, never>
}

const benchmarks: Record<string, Benchmark> = {
  actors: { full: 1000, quick: 100, run: (url, size) => Effect.scoped(actors(url, size)) },
  phones: { full: 50, quick: 10, run: (url, size) => Effect.scoped(phones(url, size)) }
}

const usage = `usage: npm run bench -- [--quick] [${Object.keys(benchmarks).join(" | ")} ...]`

const parseArguments = (args: ReadonlyArray<string>) => {
  const quick = args.includes("--quick")
  const names = args.filter((arg) => arg !== "--quick")
  const unknown = names.filter((name) => !(name in benchmarks))
  if (unknown.length > 0) return { error: `unknown benchmark or option: ${unknown.join(", ")}\n${usage}` }
  return { quick, names: names.length > 0 ? names : Object.keys(benchmarks) }
}

const failureOf = (cause: Cause.Cause<unknown>) => {
  const error = Cause.squash(cause)
  return error instanceof ScenarioFailed ? error.message : Cause.pretty(cause)
}

const program = Effect.gen(function* () {
  const parsed = parseArguments(process.argv.slice(2))
  if ("error" in parsed) {
    console.error(parsed.error)
    return yield* Effect.fail("bad arguments")
  }
  const server = yield* postgresServer
  console.log(
    `benchmarks: ${parsed.names.join(", ")}${parsed.quick ? " (quick sizes)" : ""}; databases on ${server.where}` +
      (globalThis.gc === undefined ? "; no --expose-gc: memory is read without a forced GC" : "")
  )
  const failed: Array<string> = []
  for (const name of parsed.names) {
    const benchmark = benchmarks[name]!
    const exit = yield* Effect.exit(
      benchmark.run(server.url, parsed.quick ? benchmark.quick : benchmark.full)
    )
    if (Exit.isSuccess(exit)) yield* publish(exit.value)
    else {
      failed.push(name)
      console.error(`\n${name}: FAILED, no figures: ${failureOf(exit.cause)}`)
    }
  }
  if (failed.length > 0) return yield* Effect.fail(`failed: ${failed.join(", ")}`)
}).pipe(Effect.scoped)

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  // whatever a benchmark left running (a Baileys timer), the run is over
  teardown: (exit) => Runtime.defaultTeardown(exit, (code) => process.exit(code))
})
