import { Cause, Duration, Effect, Option, Predicate, Random, Schedule } from "effect"

/** The pauses before retries, before jitter: the pause after attempt n is the table's nth entry; past its end, give up. */
export interface DelayTable {
  readonly _tag: "DelayTable"
  readonly retries: ReadonlyArray<Duration.Duration>
}

/** Pauses that start at `base` and grow by `factor` after each attempt, up to `max`, never giving up. */
export interface ExponentialDelays {
  readonly _tag: "ExponentialDelays"
  readonly base: Duration.Duration
  readonly factor: number
  readonly max: Duration.Duration
}

/** What a server may ask for with `Retry-After`: honoured, but never sooner than `min` nor later than `max`. */
export interface RetryAfterBounds {
  readonly min: Duration.Duration
  readonly max: Duration.Duration
}

/** When to try again after a failed attempt, and when to give up. */
export interface RetryPolicy {
  readonly delays: DelayTable | ExponentialDelays
  /** How far a pause may stray from its nominal length, as a fraction (0.2 = ±20 %): retries that failed together spread out. */
  readonly jitter: number
  /** Absent, a `Retry-After` is ignored. */
  readonly retryAfter?: RetryAfterBounds
}

/** Webhook deliveries: at once, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (8 attempts in all), ±20 %. */
export const webhookDeliveryRetries: RetryPolicy = {
  delays: {
    _tag: "DelayTable",
    retries: [
      Duration.seconds(5),
      Duration.minutes(5),
      Duration.minutes(30),
      Duration.hours(2),
      Duration.hours(5),
      Duration.hours(10),
      Duration.hours(10)
    ]
  },
  jitter: 0.2,
  // at least the first retry's pause, so a receiver cannot make us hammer it; at most the longest pause
  retryAfter: { min: Duration.seconds(5), max: Duration.hours(10) }
}

/** Channel reconnects: 1 s doubling up to 5 min, ±20 %, for as long as the channel should run. */
export const channelReconnectBackoff: RetryPolicy = {
  delays: { _tag: "ExponentialDelays", base: Duration.seconds(1), factor: 2, max: Duration.minutes(5) },
  jitter: 0.2
}

/** What the next pause depends on: the attempt that just failed (from 1), what its server asked for, and a draw in [0, 1). */
export interface RetryStep {
  readonly attempt: number
  readonly retryAfter?: Duration.Duration | undefined
  readonly random: number
}

const nominalMillis = (delays: RetryPolicy["delays"], attempt: number): number | undefined => {
  switch (delays._tag) {
    case "DelayTable": {
      const delay = delays.retries[attempt - 1]
      return delay === undefined ? undefined : Duration.toMillis(delay)
    }
    case "ExponentialDelays":
      // a huge attempt makes the power Infinity, which the cap turns back into `max`
      return Math.min(
        Duration.toMillis(delays.max),
        Duration.toMillis(delays.base) * delays.factor ** (attempt - 1)
      )
  }
}

/**
 * The pause before the next attempt, or None to give up. A `Retry-After` replaces the policy's pause,
 * clamped to its bounds and not jittered (the server named a time), but never adds an attempt.
 */
export const nextDelay = (policy: RetryPolicy, step: RetryStep): Option.Option<Duration.Duration> => {
  const nominal = nominalMillis(policy.delays, step.attempt)
  if (nominal === undefined) return Option.none()
  if (step.retryAfter !== undefined && policy.retryAfter !== undefined) {
    return Option.some(
      Duration.clamp(step.retryAfter, { minimum: policy.retryAfter.min, maximum: policy.retryAfter.max })
    )
  }
  return Option.some(Duration.millis(nominal * (1 - policy.jitter + 2 * policy.jitter * step.random)))
}

/** `nextDelay` with its draw taken from Effect's `Random`, so a test can seed it. */
export const drawNextDelay = (
  policy: RetryPolicy,
  step: Omit<RetryStep, "random">
): Effect.Effect<Option.Option<Duration.Duration>> =>
  Effect.map(Random.next, (random) => nextDelay(policy, { ...step, random }))

/** A failure's `retryAfter`, when it carries one as a Duration (an HTTP 429 or 503 answer, say). */
const retryAfterOf = (failure: unknown): Duration.Duration | undefined =>
  Predicate.hasProperty(failure, "retryAfter") && Duration.isDuration(failure.retryAfter)
    ? failure.retryAfter
    : undefined

/**
 * The policy as a `Schedule` for retrying in memory (`Effect.retry`): each pause is `drawNextDelay`'s, so
 * the two cannot drift, and a failure with a `retryAfter: Duration` field steers it. Outputs the pause.
 */
export const retrySchedule = (policy: RetryPolicy): Schedule.Schedule<Duration.Duration, unknown> =>
  Schedule.fromStepWithMetadata(
    Effect.succeed((step: Schedule.InputMetadata<unknown>) =>
      Effect.flatMap(
        drawNextDelay(policy, { attempt: step.attempt, retryAfter: retryAfterOf(step.input) }),
        Option.match({
          onNone: () => Cause.done(Duration.zero),
          onSome: (delay) => Effect.succeed([delay, delay] as [Duration.Duration, Duration.Duration])
        })
      )
    )
  )
