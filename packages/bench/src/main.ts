import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit, Runtime, type Scope } from "effect"
import { actors } from "./actors.ts"
import { deliveries } from "./deliveries.ts"
import { ScenarioFailed } from "./measure.ts"
import { inbound } from "./inbound.ts"
import { phones } from "./phones.ts"
import { postgresServer } from "./postgres.ts"
import { reads } from "./reads.ts"
import { reconnects } from "./reconnects.ts"
import { recovery } from "./recovery.ts"
import { publish, type Report } from "./report.ts"
import { scale } from "./scale.ts"
import { sends } from "./sends.ts"
import { soakArguments } from "./soak.ts"
import { takeover } from "./takeover.ts"

interface Benchmark {
  readonly run: (serverUrl: string, quick: boolean) => Effect.Effect<Report, unknown, never>
}

/** A benchmark at its full or its quick size, whatever a size is to it. */
const sized = <Size>(
  full: Size,
  quick: Size,
  run: (serverUrl: string, size: Size) => Effect.Effect<Report, unknown, Scope.Scope>
): Benchmark => ({ run: (url, isQuick) => Effect.scoped(run(url, isQuick ? quick : full)) })

const benchmarks: Record<string, Benchmark> = {
  actors: sized(1000, 100, actors),
  phones: sized(200, 10, phones),
  "phones-1000": sized(1000, 1000, phones),
  reconnects: sized(
    { reconnects: 1000, boundBytesPerReconnect: 1024 },
    { reconnects: 100, boundBytesPerReconnect: 16 * 1024 },
    reconnects
  ),
  takeover: sized({ processes: 3, channels: 300 }, { processes: 2, channels: 40 }, takeover),
  recovery: sized(
    { processes: 2, channels: 200, messages: 1000 },
    { processes: 2, channels: 40, messages: 200 },
    recovery
  ),
  scale: sized(
    { processes: 3, channels: 10_000, windowSeconds: 60 },
    { processes: 2, channels: 200, windowSeconds: 10 },
    scale
  ),
  deliveries: sized(
    { deliveries: 20_000, endpoints: 4, concurrency: 64, perEndpoint: 16 },
    { deliveries: 3_000, endpoints: 4, concurrency: 64, perEndpoint: 16 },
    deliveries
  ),
  sends: sized(
    { seconds: 10, warmUpSeconds: 5, rounds: 3, connections: 64 },
    { seconds: 3, warmUpSeconds: 2, rounds: 1, connections: 64 },
    sends
  ),
  reads: sized(
    { seconds: 10, warmUpSeconds: 5, rounds: 3, connections: 64 },
    { seconds: 3, warmUpSeconds: 2, rounds: 1, connections: 64 },
    reads
  ),
  inbound: sized(
    { messages: 1000, perSecond: 20, contacts: 10 },
    { messages: 100, perSecond: 20, contacts: 5 },
    inbound
  )
}

/** Run only when named: too long for a routine run of every benchmark. */
const onlyWhenNamed = new Set(["phones-1000"])

const usage = `usage: npm run bench -- [--quick] [${Object.keys(benchmarks).join(" | ")} ...]`

const parseArguments = (args: ReadonlyArray<string>) => {
  const quick = args.includes("--quick")
  const names = args.filter((arg) => arg !== "--quick")
  const unknown = names.filter((name) => !(name in benchmarks))
  if (unknown.length > 0) return { error: `unknown benchmark or option: ${unknown.join(", ")}\n${usage}` }
  return {
    quick,
    names: names.length > 0 ? names : Object.keys(benchmarks).filter((name) => !onlyWhenNamed.has(name))
  }
}

const failureOf = (cause: Cause.Cause<unknown>) => {
  const error = Cause.squash(cause)
  return error instanceof ScenarioFailed ? error.message : Cause.pretty(cause)
}

const program = Effect.gen(function* () {
  const soakRun = soakArguments(process.argv.slice(2))
  const parsed = soakRun ?? parseArguments(process.argv.slice(2))
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
    const benchmark = soakRun !== undefined && "run" in soakRun ? soakRun : benchmarks[name]!
    const exit = yield* Effect.exit(benchmark.run(server.url, parsed.quick))
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
