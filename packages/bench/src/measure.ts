import { Data, Effect } from "effect"

/** The scenario did not complete as it should: figures taken from it would measure a broken run. */
export class ScenarioFailed extends Data.TaggedError("ScenarioFailed")<{ readonly message: string }> {}

/** Fails the scenario, naming what did not hold, unless it holds. */
export const ensure = (holds: boolean, what: string) =>
  holds ? Effect.void : Effect.fail(new ScenarioFailed({ message: what }))

/** Milliseconds elapsed since `start` (a `performance.now()` reading), to a tenth. */
export const millisSince = (start: number) => Math.round((performance.now() - start) * 10) / 10

/** Polls `check` until it holds; fails naming `what` once `withinMillis` have passed without it. */
export const waitUntil = <E, R>(
  what: string,
  check: Effect.Effect<boolean, E, R>,
  withinMillis: number,
  everyMillis = 25
) =>
  Effect.gen(function* () {
    const start = performance.now()
    while (!(yield* check)) {
      if (performance.now() - start > withinMillis)
        return yield* new ScenarioFailed({ message: `${what}: not within ${withinMillis / 1000} s` })
      yield* Effect.sleep(everyMillis)
    }
  })

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
