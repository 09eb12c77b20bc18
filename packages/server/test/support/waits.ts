import { Data, Effect } from "effect"
import { inspect } from "node:util"

/** Waits in real time, whatever clock the test runs on. */
export const pause = (millis: number) =>
  Effect.promise(() => new Promise((resolve) => setTimeout(resolve, millis)))

export interface Polling {
  /** How many times the condition is checked before the wait gives up (200 unless told). */
  readonly attempts?: number
  /** Real milliseconds between two checks (25 unless told). */
  readonly everyMillis?: number
}

const nothingSeen: unique symbol = Symbol("nothing seen")

const describe = (value: unknown) =>
  value === nothingSeen || typeof value === "boolean"
    ? ""
    : `; last seen: ${inspect(value, { depth: 4, breakLength: Infinity, maxArrayLength: 20, maxStringLength: 300 }).slice(0, 1000)}`

/** What a test waited for never happened within its bounded attempts. */
export class WaitTimedOut extends Data.TaggedError("WaitTimedOut")<{
  readonly label: string
  readonly lastSeen: unknown
  readonly message: string
}> {}

/** What a test expected to stay true stopped being true during its window. */
export class ConditionBroken extends Data.TaggedError("ConditionBroken")<{
  readonly label: string
  readonly message: string
}> {}

/**
 * Polls `observe` until `accept` takes what it saw, and returns that; fails with `WaitTimedOut`
 * (the label and the last value seen) when it never does within the bounded attempts.
 */
export const waitFor = <A, E, R>(
  label: string,
  observe: Effect.Effect<A, E, R>,
  accept: (seen: A) => boolean,
  { attempts = 200, everyMillis = 25 }: Polling = {}
): Effect.Effect<A, E | WaitTimedOut, R> =>
  Effect.gen(function* () {
    let lastSeen: A | typeof nothingSeen = nothingSeen
    for (let i = 0; i < attempts; i++) {
      if (i > 0) yield* pause(everyMillis)
      const seen = yield* observe
      if (accept(seen)) return seen
      lastSeen = seen
    }
    return yield* new WaitTimedOut({
      label,
      lastSeen,
      message: `waited for "${label}": still not true after ${attempts} checks ${everyMillis} ms apart${describe(lastSeen)}`
    })
  })

/** Polls `check` until it holds; fails with `WaitTimedOut` naming the label when it never does. */
export const waitUntil = <E, R>(
  label: string,
  check: Effect.Effect<boolean, E, R>,
  polling: Polling = {}
): Effect.Effect<void, E | WaitTimedOut, R> => Effect.asVoid(waitFor(label, check, (holds) => holds, polling))

/**
 * Checks that `check` holds throughout a window of real time, for what must NOT happen
 * (no reconnect, no new connection); fails with `ConditionBroken` at the first check that fails.
 */
export const staysTrue = <E, R>(
  label: string,
  check: Effect.Effect<boolean, E, R>,
  { forMillis, everyMillis = 25 }: { readonly forMillis: number; readonly everyMillis?: number }
): Effect.Effect<void, E | ConditionBroken, R> =>
  Effect.gen(function* () {
    const started = Date.now()
    for (;;) {
      if (!(yield* check)) {
        return yield* new ConditionBroken({
          label,
          message: `expected "${label}" to hold throughout ${forMillis} ms, but it stopped after ${Date.now() - started} ms`
        })
      }
      if (Date.now() - started >= forMillis) return
      yield* pause(Math.min(everyMillis, forMillis - (Date.now() - started)))
    }
  })
