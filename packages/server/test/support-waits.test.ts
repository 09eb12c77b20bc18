import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { ConditionBroken, staysTrue, waitFor, waitUntil, WaitTimedOut } from "./support/waits.ts"

describe("the tests' waits", () => {
  it.live("a wait for a condition that never holds fails with its label", () =>
    Effect.gen(function* () {
      let checks = 0
      const error = yield* waitUntil(
        "the phone scans the QR",
        Effect.sync(() => {
          checks++
          return false
        }),
        { attempts: 5, everyMillis: 1 }
      ).pipe(Effect.flip)
      expect(error).toBeInstanceOf(WaitTimedOut)
      expect(error.label).toBe("the phone scans the QR")
      expect(error.message).toMatch(/^waited for "the phone scans the QR": still not true after 5 checks/)
      expect(checks).toBe(5)
    })
  )

  it.live("a wait that observes a value reports the last one it saw", () =>
    Effect.gen(function* () {
      let status = 0
      const error = yield* waitFor(
        "the channel is connected",
        Effect.sync(() => ({ status: `pairing ${++status}` })),
        (channel) => channel.status === "connected",
        { attempts: 3, everyMillis: 1 }
      ).pipe(Effect.flip)
      expect(error.label).toBe("the channel is connected")
      expect(error.lastSeen).toEqual({ status: "pairing 3" })
      expect(error.message).toContain("last seen: { status: 'pairing 3' }")
    })
  )

  it.live("a wait returns what it saw once the condition holds", () =>
    Effect.gen(function* () {
      let n = 0
      const seen = yield* waitFor(
        "the third check",
        Effect.sync(() => ++n),
        (value) => value === 3,
        { everyMillis: 1 }
      )
      expect(seen).toBe(3)
      yield* waitUntil(
        "a condition that already holds",
        Effect.sync(() => true)
      )
    })
  )

  it.live("what must not happen: staysTrue fails with its label when the condition breaks", () =>
    Effect.gen(function* () {
      const started = Date.now()
      const broken = yield* staysTrue(
        "no reconnect",
        Effect.sync(() => Date.now() - started < 30),
        { forMillis: 2_000, everyMillis: 5 }
      ).pipe(Effect.flip)
      expect(broken).toBeInstanceOf(ConditionBroken)
      expect(broken.label).toBe("no reconnect")
      expect(broken.message).toMatch(/^expected "no reconnect" to hold throughout 2000 ms/)

      let checks = 0
      yield* staysTrue(
        "a condition that holds",
        Effect.sync(() => ++checks > 0),
        { forMillis: 50, everyMillis: 5 }
      )
      expect(checks).toBeGreaterThan(2)
    })
  )
})
