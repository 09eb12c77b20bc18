import { Data, Effect } from "effect"
import * as fs from "node:fs"
import { Session } from "node:inspector/promises"
import * as path from "node:path"
import { waitUntil as harnessWait } from "../../server/test/support/waits.ts"
import { measureMemory } from "./memoryReadings.ts"

/** The scenario did not complete as it should: figures taken from it would measure a broken run. */
export class ScenarioFailed extends Data.TaggedError("ScenarioFailed")<{ readonly message: string }> {}

/** Fails the scenario, naming what did not hold, unless it holds. */
export const ensure = (holds: boolean, what: string) =>
  holds ? Effect.void : Effect.fail(new ScenarioFailed({ message: what }))

/** Milliseconds elapsed since `start` (a `performance.now()` reading), to a tenth. */
export const millisSince = (start: number) => Math.round((performance.now() - start) * 10) / 10

/** Milliseconds (or any figure) to a tenth. */
export const tenths = (value: number) => Math.round(value * 10) / 10

export const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** The nearest-rank percentile `p` (0–100) of `values`. */
export const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

/** A ratio to three decimals, judged as measured: 2.496 is not rounded up into meeting 2.5. */
export const judged = (ratio: number) => Math.floor(ratio * 1000) / 1000

/** Polls `check` until it holds, for at most `withinMillis` (the test harness's bounded wait). */
export const waitUntil = <E, R>(what: string, check: Effect.Effect<boolean, E, R>, withinMillis: number) =>
  harnessWait(what, check, { attempts: Math.ceil(withinMillis / 25), everyMillis: 25 })

/**
 * The CPU time (user and system) another process has used so far, from Linux's `/proc/<pid>/stat`
 * (in clock ticks of 10 ms, Linux's `USER_HZ` of 100).
 */
export const processCpuMillis = (pid: number) =>
  Effect.sync(() => {
    // the fields after the command name, which is in parentheses and may hold spaces
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    return (Number(fields[11]) + Number(fields[12])) * 10
  })

export interface MemoryReading {
  readonly heapUsed: number
  readonly rss: number
  /** Whether a full garbage collection ran first (needs `node --expose-gc`). */
  readonly collected: boolean
}

/** The process's heap and resident set, after a full garbage collection when one can be asked for. */
export const readMemory = Effect.promise(measureMemory).pipe(
  Effect.map(({ heapUsed, rss, collected }): MemoryReading => ({ heapUsed, rss, collected }))
)

/** Set to a directory, benchmarks profile their measured rounds there (`<name>.cpuprofile`). */
export const profileDir = process.env.BENCH_CPU_PROFILE_DIR

/** Profiles `effect` into `<BENCH_CPU_PROFILE_DIR>/<name>.cpuprofile` when that is set (the inspector's sampling profiler). */
export const profiled = <A, E, R>(name: string, effect: Effect.Effect<A, E, R>) =>
  profileDir === undefined
    ? effect
    : Effect.acquireUseRelease(
        Effect.promise(async () => {
          const session = new Session()
          session.connect()
          await session.post("Profiler.enable")
          await session.post("Profiler.setSamplingInterval", { interval: 200 })
          await session.post("Profiler.start")
          return session
        }),
        () => effect,
        (session) =>
          Effect.promise(async () => {
            const { profile } = await session.post("Profiler.stop")
            fs.mkdirSync(profileDir, { recursive: true })
            fs.writeFileSync(path.join(profileDir, `${name}.cpuprofile`), JSON.stringify(profile))
            session.disconnect()
          })
      )
