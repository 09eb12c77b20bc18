import { Data, Effect } from "effect"
import { waitUntil as harnessWait } from "../../server/test/support/waits.ts"

/** The scenario did not complete as it should: figures taken from it would measure a broken run. */
export class ScenarioFailed extends Data.TaggedError("ScenarioFailed")<{ readonly message: string }> {}

/** Fails the scenario, naming what did not hold, unless it holds. */
export const ensure = (holds: boolean, what: string) =>
  holds ? Effect.void : Effect.fail(new ScenarioFailed({ message: what }))

/** Milliseconds elapsed since `start` (a `performance.now()` reading), to a tenth. */
export const millisSince = (start: number) => Math.round((performance.now() - start) * 10) / 10

/** Polls `check` until it holds, for at most `withinMillis` (the test harness's bounded wait). */
export const waitUntil = <E, R>(what: string, check: Effect.Effect<boolean, E, R>, withinMillis: number) =>
  harnessWait(what, check, { attempts: Math.ceil(withinMillis / 25), everyMillis: 25 })

export interface MemoryReading {
  readonly heapUsed: number
  readonly rss: number
  /** Whether a full garbage collection ran first (needs `node --expose-gc`). */
  readonly collected: boolean
}

/** The process's heap and resident set, after a full garbage collection when one can be asked for. */
export const readMemory = Effect.promise(async (): Promise<MemoryReading> => {
  const collect = globalThis.gc
  if (collect !== undefined) {
    collect()
    // finalizers and weak references queued by the first pass are released by the second
    await new Promise((resolve) => setImmediate(resolve))
    collect()
  }
  const { heapUsed, rss } = process.memoryUsage()
  return { heapUsed, rss, collected: collect !== undefined }
})
