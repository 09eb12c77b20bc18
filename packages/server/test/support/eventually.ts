import { Effect } from "effect"

/** Waits in real time, whatever clock the test runs on. */
export const pause = (millis: number) =>
  Effect.promise(() => new Promise((resolve) => setTimeout(resolve, millis)))

/** Polls until `check` holds, a bounded number of times, and says whether it did. */
export const eventually = (check: Effect.Effect<boolean>, attempts = 200, everyMillis = 25) =>
  Effect.gen(function* () {
    for (let i = 0; i < attempts; i++) {
      if (yield* check) return true
      yield* pause(everyMillis)
    }
    return false
  })
