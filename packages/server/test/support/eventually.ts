import { Effect } from "effect"

/** Polls until `check` holds, a bounded number of times, and says whether it did. */
export const eventually = (check: Effect.Effect<boolean>, attempts = 200, pause = "25 millis" as const) =>
  Effect.gen(function* () {
    for (let i = 0; i < attempts; i++) {
      if (yield* check) return true
      yield* Effect.sleep(pause)
    }
    return false
  })
