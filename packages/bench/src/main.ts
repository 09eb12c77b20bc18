import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit, Runtime, type Scope } from "effect"
import { actors } from "./actors.ts"
import { describeSize, parseCommandLine, type Size, type Sizes } from "./commandLine.ts"
import { deliveries } from "./deliveries.ts"
import { ScenarioFailed } from "./measure.ts"
import { inbound } from "./inbound.ts"
import { phones } from "./phones.ts"
import { postgresServer } from "./postgres.ts"
import { reads } from "./reads.ts"
import { reconnects } from "./reconnects.ts"
import { recovery } from "./recovery.ts"
import { recoveryBaileys } from "./recoveryBaileys.ts"
import { publish, type Report } from "./report.ts"
import { scale } from "./scale.ts"
import { sends } from "./sends.ts"
import { soakArguments } from "./soak.ts"
import { takeover } from "./takeover.ts"

interface Benchmark extends Sizes {
  readonly run: (serverUrl: string, size: Size) => Effect.Effect<Report, unknown, never>
}

/** A benchmark at its full or its quick size (named numbers: channels, seconds, rounds), either changed by `--set`. */
const sized = <S extends { readonly [Field in keyof S]: number }>(
  full: S,
  quick: S,
  run: (serverUrl: string, size: S) => Effect.Effect<Report, unknown, Scope.Scope>
): Benchmark => ({
  full,
  quick,
  // the command line changes only fields the size has, to numbers: still an S
  run: (url, size) => Effect.scoped(run(url, size as unknown as S))
})

const benchmarks: Record<string, Benchmark> = {
  actors: sized({ actors: 1000 }, { actors: 100 }, actors),
  phones: sized({ channels: 200 }, { channels: 10 }, phones),
  "phones-1000": sized({ channels: 1000 }, { channels: 1000 }, (url, size) =>
    phones(url, size, "phones-1000")
  ),
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
  "recovery-baileys": sized(
    { channels: 200, messages: 1000 },
    { channels: 20, messages: 100 },
    recoveryBaileys
  ),
  scale: sized(
    { processes: 3, channels: 10_000, windowSeconds: 60 },
    { processes: 2, channels: 200, windowSeconds: 10 },
    scale
  ),
  deliveries: sized(
    { deliveries: 20_000, endpoints: 4, concurrency: 64, perEndpoint: 16, rounds: 3 },
    { deliveries: 3_000, endpoints: 4, concurrency: 64, perEndpoint: 16, rounds: 1 },
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

const failureOf = (cause: Cause.Cause<unknown>) => {
  const error = Cause.squash(cause)
  return error instanceof ScenarioFailed ? error.message : Cause.pretty(cause)
}

/** What the command line asks to run, each benchmark with what runs it; or what is wrong with it. */
const runsOf = (args: ReadonlyArray<string>) => {
  const soakRun = soakArguments(args)
  if (soakRun !== undefined) {
    return "error" in soakRun
      ? soakRun
      : { quick: false, runs: [{ name: "soak", size: {}, set: "", run: soakRun.run }] }
  }
  const plan = parseCommandLine(args, benchmarks, onlyWhenNamed)
  if (!("runs" in plan)) return plan
  return {
    quick: plan.quick,
    runs: plan.runs.map((run) => ({ ...run, run: (url: string) => benchmarks[run.name]!.run(url, run.size) }))
  }
}

const program = Effect.gen(function* () {
  const parsed = runsOf(process.argv.slice(2))
  if ("help" in parsed) return yield* Effect.sync(() => console.log(parsed.help))
  if ("error" in parsed) {
    console.error(parsed.error)
    return yield* Effect.fail("bad arguments")
  }
  const server = yield* postgresServer
  console.log(
    `benchmarks: ${parsed.runs.map((run) => run.name).join(", ")}${parsed.quick ? " (quick sizes)" : ""}; databases on ${server.where}` +
      (globalThis.gc === undefined ? "; no --expose-gc: memory is read without a forced GC" : "")
  )
  const failed: Array<string> = []
  for (const { name, size, set, run } of parsed.runs) {
    if (set !== "") console.log(`\n${name}: ${describeSize(size)} (--set ${set})`)
    const exit = yield* Effect.exit(run(server.url))
    if (Exit.isSuccess(exit)) {
      const report = exit.value
      yield* publish(
        set === "" ? report : { ...report, parameters: { ...report.parameters, set_on_command_line: set } }
      )
    } else {
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
