import { describe, expect, it } from "@effect/vitest"
import { Clock, Data, Duration, Effect, Exit, Option, Random } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import {
  channelReconnectBackoff,
  drawNextDelay,
  nextDelay,
  type RetryPolicy,
  retrySchedule,
  webhookDeliveryRetries
} from "../src/retry/retryPolicy.ts"

const second = 1_000
const minute = 60 * second
const hour = 60 * minute

/** The pauses DESIGN.md gives for webhook retries, written out independently of the module. */
const webhookPauses = [5 * second, 5 * minute, 30 * minute, 2 * hour, 5 * hour, 10 * hour, 10 * hour]
const reconnectPause = (attempt: number) => Math.min(second * 2 ** (attempt - 1), 5 * minute)

/** A draw of 0.5 lands on the nominal pause: no jitter either way. */
const noJitter = 0.5

const millis = (delay: Option.Option<Duration.Duration>) => Option.map(delay, Duration.toMillis)

/** A draw in [0, 1), as Effect's Random gives. */
const draw = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })

/** A receiver's answer that failed an attempt, with the Retry-After it sent, if any. */
class HttpStatus extends Data.TaggedError("HttpStatus")<{
  readonly status: number
  readonly retryAfter: Duration.Duration | undefined
}> {}

/** Effect's Random, answering these draws in turn. */
const scriptedRandom = (draws: ReadonlyArray<number>): Random.Random => {
  let next = 0
  return {
    nextDoubleUnsafe: () => draws[next++ % draws.length]!,
    nextIntUnsafe: () => 0
  }
}

/**
 * Retries an attempt that fails with `failures` in turn (then succeeds) through `Effect.retry` and the
 * policy's schedule, moving the test clock to a millisecond before, then to, each moment `nextDelay`
 * predicts: nothing may happen early, the next attempt must happen then.
 */
const driveRetries = (
  policy: RetryPolicy,
  failures: ReadonlyArray<HttpStatus>,
  draws: ReadonlyArray<number>
) =>
  Effect.gen(function* () {
    const times: Array<number> = []
    const attempt = Effect.gen(function* () {
      times.push(yield* Clock.currentTimeMillis)
      const failure = failures[times.length - 1]
      return failure === undefined ? "delivered" : yield* failure
    })
    const fiber = yield* Effect.retry(attempt, retrySchedule(policy)).pipe(
      Effect.provideService(Random.Random, scriptedRandom(draws)),
      Effect.forkChild
    )
    yield* TestClock.adjust(0)
    expect(times).toHaveLength(1)
    let expectedAt = times[0]!
    for (let failed = 1; ; failed++) {
      const delay = nextDelay(policy, {
        attempt: failed,
        retryAfter: failures[failed - 1]?.retryAfter,
        random: draws[(failed - 1) % draws.length]!
      })
      if (Option.isNone(delay) || failed > failures.length) break
      expectedAt += Duration.toMillis(delay.value)
      yield* TestClock.setTime(expectedAt - 1)
      expect(times, `no attempt ${failed + 1} before its time`).toHaveLength(failed)
      yield* TestClock.setTime(expectedAt)
      expect(times, `attempt ${failed + 1} at its time`).toHaveLength(failed + 1)
      expect(times[failed]).toBe(expectedAt)
    }
    // past its last pause, the retrying has ended: given up, or succeeded
    yield* TestClock.adjust(0)
    const exit = fiber.pollUnsafe()
    if (exit === undefined) return expect.fail(`still retrying after ${times.length} attempts`)
    return { times, exit }
  })

describe("the retry policy shared by webhook deliveries and channel reconnects", () => {
  it("a webhook delivery is retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, then given up after its 8th attempt", () => {
    for (const [index, pause] of webhookPauses.entries()) {
      expect(millis(nextDelay(webhookDeliveryRetries, { attempt: index + 1, random: noJitter }))).toEqual(
        Option.some(pause)
      )
    }
    expect(nextDelay(webhookDeliveryRetries, { attempt: 8, random: noJitter })).toEqual(Option.none())
    expect(nextDelay(webhookDeliveryRetries, { attempt: 9, random: noJitter })).toEqual(Option.none())
  })

  it("a channel reconnects after 1 s, doubling up to 5 min, and never gives up", () => {
    const pauses = [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300].map((seconds) => seconds * second)
    for (const [index, pause] of pauses.entries()) {
      expect(millis(nextDelay(channelReconnectBackoff, { attempt: index + 1, random: noJitter }))).toEqual(
        Option.some(pause)
      )
    }
    for (const attempt of [100, 10_000, 1_000_000]) {
      expect(millis(nextDelay(channelReconnectBackoff, { attempt, random: noJitter }))).toEqual(
        Option.some(5 * minute)
      )
    }
  })

  it("every pause stays within ±20 % of its nominal length, and the draw spreads it across that range", () => {
    const cases = fc.oneof(
      fc.record({
        policy: fc.constant(webhookDeliveryRetries),
        attempt: fc.integer({ min: 1, max: 7 }),
        random: draw
      }),
      fc.record({
        policy: fc.constant(channelReconnectBackoff),
        attempt: fc.integer({ min: 1, max: 10_000 }),
        random: draw
      })
    )
    fc.assert(
      fc.property(cases, ({ policy, attempt, random }) => {
        const nominal =
          policy === webhookDeliveryRetries ? webhookPauses[attempt - 1]! : reconnectPause(attempt)
        const delay = Duration.toMillis(Option.getOrThrow(nextDelay(policy, { attempt, random })))
        expect(delay).toBeGreaterThanOrEqual(nominal * 0.8)
        expect(delay).toBeLessThanOrEqual(nominal * 1.2)
        // the draw maps onto the whole range: the lowest draw is the shortest pause
        expect(delay).toBeCloseTo(nominal * (0.8 + 0.4 * random), 6)
      })
    )
  })

  it("a webhook receiver's Retry-After is honoured, clamped to between 5 s and 10 h, without jitter", () => {
    const asked = (retryAfter: number, attempt = 3) =>
      millis(
        nextDelay(webhookDeliveryRetries, { attempt, retryAfter: Duration.millis(retryAfter), random: 0.9 })
      )
    expect(asked(42 * second)).toEqual(Option.some(42 * second))
    expect(asked(0)).toEqual(Option.some(5 * second))
    expect(asked(1 * second)).toEqual(Option.some(5 * second))
    expect(asked(2 * 24 * hour)).toEqual(Option.some(10 * hour))
    // asking for more time never buys another attempt
    expect(asked(42 * second, 8)).toEqual(Option.none())
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3 * 24 * hour }),
        fc.integer({ min: 1, max: 7 }),
        (retryAfter, attempt) => {
          expect(asked(retryAfter, attempt)).toEqual(
            Option.some(Math.min(10 * hour, Math.max(5 * second, retryAfter)))
          )
        }
      )
    )
  })

  it("a reconnect goes by its own backoff: WhatsApp sends no Retry-After, and the policy takes none", () => {
    expect(
      millis(
        nextDelay(channelReconnectBackoff, { attempt: 1, retryAfter: Duration.hours(1), random: noJitter })
      )
    ).toEqual(Option.some(1 * second))
  })

  it("a reconnect never waits more than 5 min (plus its jitter), however many attempts failed", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), draw, (attempt, random) => {
        const delay = Duration.toMillis(
          Option.getOrThrow(nextDelay(channelReconnectBackoff, { attempt, random }))
        )
        expect(delay).toBeLessThanOrEqual(5 * minute * 1.2)
        if (attempt >= 10) expect(delay).toBeGreaterThanOrEqual(5 * minute * 0.8)
      })
    )
  })

  it.effect("drawNextDelay takes its draw from Effect's Random, so a seed replays it", () =>
    Effect.gen(function* () {
      const draws = yield* Effect.all([Random.next, Random.next, Random.next]).pipe(
        Random.withSeed("retries")
      )
      const drawn = yield* Effect.forEach([1, 2, 3], (attempt) =>
        drawNextDelay(webhookDeliveryRetries, { attempt })
      ).pipe(Random.withSeed("retries"))
      expect(drawn.map(millis)).toEqual(
        draws.map((random, index) =>
          millis(nextDelay(webhookDeliveryRetries, { attempt: index + 1, random }))
        )
      )
    })
  )

  it.effect(
    "retried through its Schedule, a webhook delivery is attempted when nextDelay says, steered by Retry-After, and given up after 8 attempts",
    () =>
      Effect.gen(function* () {
        const failures = [
          new HttpStatus({ status: 500, retryAfter: undefined }),
          new HttpStatus({ status: 503, retryAfter: undefined }),
          new HttpStatus({ status: 429, retryAfter: Duration.seconds(42) }),
          new HttpStatus({ status: 500, retryAfter: undefined }),
          new HttpStatus({ status: 429, retryAfter: Duration.seconds(1) }),
          new HttpStatus({ status: 500, retryAfter: undefined }),
          new HttpStatus({ status: 500, retryAfter: undefined }),
          new HttpStatus({ status: 500, retryAfter: undefined }),
          new HttpStatus({ status: 500, retryAfter: undefined })
        ]
        const { times, exit } = yield* driveRetries(
          webhookDeliveryRetries,
          failures,
          [0.1, 0.9, 0.5, 0, 0.99, 0.3, 0.7, 0.2]
        )
        expect(times).toHaveLength(8)
        expect(exit).toEqual(Exit.fail(failures[7]))
        // the 429s: 42 s as asked, and 1 s raised to the 5 s floor
        expect(times[3]! - times[2]!).toBe(42 * second)
        expect(times[5]! - times[4]!).toBe(5 * second)
        // the rest keep the table's pauses, jittered
        expect(times[1]! - times[0]!).toBeCloseTo(5 * second * 0.84, 6)
        expect(times[2]! - times[1]!).toBeCloseTo(5 * minute * 1.16, 6)
      })
  )

  it.effect(
    "retried through its Schedule, a channel reconnects when nextDelay says, for as long as it fails",
    () =>
      Effect.gen(function* () {
        const failures = Array.from(
          { length: 14 },
          () => new HttpStatus({ status: 503, retryAfter: undefined })
        )
        const { times, exit } = yield* driveRetries(channelReconnectBackoff, failures, [0.25, 0.75, 0, 0.5])
        expect(exit).toEqual(Exit.succeed("delivered"))
        expect(times).toHaveLength(15)
        for (const [index, time] of times.slice(10).entries()) {
          const pause = time - times[index + 9]!
          expect(pause).toBeGreaterThanOrEqual(5 * minute * 0.8)
          expect(pause).toBeLessThanOrEqual(5 * minute * 1.2)
        }
      })
  )
})
