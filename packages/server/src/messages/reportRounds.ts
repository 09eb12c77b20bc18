import { Deferred, Duration, Effect, Option, Queue, type Scope } from "effect"
import { type Fence, LeaseLost } from "../channels/leases.ts"
import type { StatusReport } from "../channels/messaging.ts"
import type { ReportBatch, ReportOutcome } from "./outbox.ts"

/** Reports one round applies at most (a connection hands in up to 500 at a time): the rest wait for the next. */
const reportsPerRound = 2_000

/** How long a round waits before trying again channels whose rows were locked elsewhere. */
const heldBackMillis = 10

/**
 * Rounds in a row a batch may be held back (a tenth of a second or so) before it goes alone and waits
 * for its channel's row: others locking it often (sends, inbound messages) must not starve its reports.
 */
const heldBackBeforeWaiting = 16

/** How long after a failed round its batches are tried again, each in a round of its own. */
const afterFailureMillis = 1_000

interface HandedIn {
  readonly batch: ReportBatch
  readonly done: Deferred.Deferred<void, LeaseLost>
  /** Rounds with it that failed: once one has, it goes alone, so that one bad batch holds back no other. */
  failures: number
  /** Rounds in a row that held it back (its channel's row locked elsewhere). */
  heldBack: number
  /** Not tried again before (monotonic ms). */
  notBefore: number
}

/**
 * Every connection's acks and receipts, applied in rounds: what the connections hand in while one
 * round's transaction runs goes into the next, one transaction for all of them. One transaction per
 * connection instead would keep as many going at once as channels report, each re-checking a lease
 * and locking a row for a few reports. A channel's batch is applied, or refused (its lease is lost), or
 * held back to a later round while its channel's row is locked elsewhere: that channel waits, not
 * the others (until it has waited many rounds: then it waits for the row, alone). A round that fails (the database gone) is tried again a second later, each of its
 * batches alone. Runs until the scope closes.
 */
export const makeReportRounds = (
  applyAll: (
    batches: ReadonlyArray<ReportBatch>,
    wait: boolean
  ) => Effect.Effect<ReadonlyArray<ReportOutcome>>
): Effect.Effect<
  (fence: Fence, reports: ReadonlyArray<StatusReport>) => Effect.Effect<void, LeaseLost>,
  never,
  Scope.Scope
> =>
  Effect.gen(function* () {
    const handedIn = yield* Queue.unbounded<HandedIn>()
    /** Handed in and not yet applied, in the order they came: held back, or beyond the last round. */
    let waiting: Array<HandedIn> = []

    let quietUntil = 0
    const round = Effect.gen(function* () {
      waiting = [
        ...waiting,
        ...(waiting.length === 0 ? yield* Queue.takeAll(handedIn) : yield* Queue.clear(handedIn))
      ]
      const now = performance.now()
      // a channel's first batch only (a later one keeps its place behind it), once it may be tried, as
      // many as fit; one that failed before goes alone, and one held back many times in a row goes
      // alone and waits for its channel's row
      const taken: Array<HandedIn> = []
      const later: Array<HandedIn> = []
      const channels = new Set<string>()
      let size = 0
      let alone = false
      let nextTry = Number.POSITIVE_INFINITY
      for (const entry of waiting) {
        const { channelId } = entry.batch.fence
        const first = !channels.has(channelId)
        channels.add(channelId)
        if (first && entry.notBefore > now) nextTry = Math.min(nextTry, entry.notBefore)
        const solo = entry.failures > 0 || entry.heldBack >= heldBackBeforeWaiting
        const fits =
          taken.length === 0 || (!alone && !solo && size + entry.batch.reports.length <= reportsPerRound)
        if (!first || entry.notBefore > now || !fits) {
          later.push(entry)
          continue
        }
        size += entry.batch.reports.length
        alone = solo
        taken.push(entry)
      }
      waiting = later
      if (taken.length === 0) {
        // every channel's first batch waits to be tried again: until the first may be, or something new comes
        const more = yield* Effect.raceFirst(
          Queue.takeAll(handedIn),
          Effect.as(Effect.sleep(Duration.millis(nextTry - now)), [])
        )
        waiting.push(...more)
        return
      }
      const wait = taken.length === 1 && taken[0]!.heldBack >= heldBackBeforeWaiting
      const outcomes = yield* applyAll(
        taken.map((entry) => entry.batch),
        wait
      ).pipe(
        Effect.tapCause((cause) =>
          Effect.suspend(() => {
            for (const entry of taken) {
              entry.failures++
              entry.notBefore = performance.now() + afterFailureMillis
            }
            waiting = [...taken, ...waiting]
            if (performance.now() < quietUntil) return Effect.void
            quietUntil = performance.now() + afterFailureMillis
            return Effect.logError("applying acks and receipts failed; trying again", cause)
          })
        ),
        Effect.map(Option.some),
        Effect.catchCause(() => Effect.succeed(Option.none()))
      )
      if (Option.isNone(outcomes)) return
      const heldBack: Array<HandedIn> = []
      taken.forEach((entry, i) => {
        const outcome = outcomes.value[i]
        if (outcome === "applied") Deferred.doneUnsafe(entry.done, Effect.void)
        else if (outcome === "lease_lost") {
          Deferred.doneUnsafe(
            entry.done,
            Effect.fail(new LeaseLost({ channelId: entry.batch.fence.channelId }))
          )
        } else {
          entry.heldBack++
          entry.notBefore = performance.now() + heldBackMillis
          heldBack.push(entry)
        }
      })
      waiting = [...heldBack, ...waiting]
    })

    yield* Effect.forkScoped(
      Effect.forever(
        round.pipe(
          Effect.catchCause((cause) =>
            Effect.logError("the rounds of acks and receipts failed; going on", cause).pipe(
              Effect.andThen(Effect.sleep(Duration.millis(afterFailureMillis)))
            )
          )
        )
      )
    )

    return (fence, reports) =>
      Effect.suspend(() => {
        const done = Deferred.makeUnsafe<void, LeaseLost>()
        Queue.offerUnsafe(handedIn, {
          batch: { fence, reports },
          done,
          failures: 0,
          heldBack: 0,
          notBefore: 0
        })
        return Deferred.await(done)
      })
  })
