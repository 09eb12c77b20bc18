import { describe, expect, it } from "@effect/vitest"
import type { ChannelId } from "@whatisup/domain"
import { Deferred, Effect, Exit, Fiber } from "effect"
import type { StatusReport } from "../src/channels/messaging.ts"
import type { ReportBatch, ReportOutcome } from "../src/messages/outbox.ts"
import { makeReportRounds } from "../src/messages/reportRounds.ts"
import { waitUntil } from "./support/waits.ts"

const fence = (channel: string, generation = 1) => ({ channelId: channel as ChannelId, generation })
const ack = (whatsappId: string): StatusReport => ({ _tag: "ServerAck", whatsappId, error: null })

/**
 * Rounds over a stand-in for the outbox: each round is recorded (the channels and reports it got),
 * answered by `decide`, and may be made to wait on `gate` (as a transaction that takes a while).
 */
const recordedRounds = (
  decide: (batch: ReportBatch, round: number, wait: boolean) => ReportOutcome | "die"
) =>
  Effect.gen(function* () {
    const rounds: Array<ReadonlyArray<string>> = []
    let gate: Deferred.Deferred<void> | undefined
    const waited: Array<number> = []
    const report = yield* makeReportRounds((batches, wait) =>
      Effect.gen(function* () {
        const round = rounds.length
        if (wait) waited.push(round)
        rounds.push(
          batches.map(
            (batch) => `${batch.fence.channelId}:${batch.reports.map((r) => r.whatsappId).join("+")}`
          )
        )
        if (gate !== undefined) yield* Deferred.await(gate)
        const outcomes = batches.map((batch) => decide(batch, round, wait))
        if (outcomes.includes("die")) return yield* Effect.die(new Error("the database went away"))
        return outcomes as Array<ReportOutcome>
      })
    )
    return {
      report,
      rounds,
      waited,
      hold: Effect.sync(() => {
        gate = Deferred.makeUnsafe<void>()
      }),
      let: Effect.suspend(() => (gate === undefined ? Effect.void : Deferred.succeed(gate, undefined)))
    }
  })

describe("report rounds", () => {
  it.live("what connections hand in while a round runs goes into the next one, together", () =>
    Effect.gen(function* () {
      const { report, rounds, hold, let: letGo } = yield* recordedRounds(() => "applied")
      yield* hold
      const first = yield* Effect.forkScoped(report(fence("ch_a"), [ack("a1")]))
      yield* waitUntil(
        "the first round runs",
        Effect.sync(() => rounds.length === 1)
      )
      const others = [
        yield* Effect.forkScoped(report(fence("ch_b"), [ack("b1")]), { startImmediately: true }),
        yield* Effect.forkScoped(report(fence("ch_c"), [ack("c1"), ack("c2")]), { startImmediately: true })
      ]
      yield* letGo
      yield* Fiber.join(first)
      yield* Fiber.joinAll(others)
      expect(rounds).toEqual([["ch_a:a1"], ["ch_b:b1", "ch_c:c1+c2"]])
    }).pipe(Effect.scoped)
  )

  it.live(
    "a batch held back goes again in a later round, its caller waiting until it is applied; a refused one fails with LeaseLost; the others are done at once",
    () =>
      Effect.gen(function* () {
        const { report, rounds } = yield* recordedRounds((batch, round) =>
          batch.fence.channelId === "ch_held"
            ? round < 3
              ? "held_back"
              : "applied"
            : batch.fence.channelId === "ch_lost"
              ? "lease_lost"
              : "applied"
        )
        const results = yield* Effect.all(
          [
            Effect.exit(report(fence("ch_held"), [ack("h1")])),
            Effect.exit(report(fence("ch_lost"), [ack("l1")])),
            Effect.exit(report(fence("ch_ok"), [ack("o1")]))
          ],
          { concurrency: "unbounded" }
        )
        expect(Exit.isSuccess(results[0])).toBe(true)
        expect(results[1]).toEqual(
          Exit.fail(expect.objectContaining({ _tag: "LeaseLost", channelId: "ch_lost" }))
        )
        expect(Exit.isSuccess(results[2])).toBe(true)
        // the held-back batch alone, round after round, until it is applied
        expect(rounds.slice(1)).toEqual([["ch_held:h1"], ["ch_held:h1"], ["ch_held:h1"]])
        expect([...rounds[0]!].sort()).toEqual(["ch_held:h1", "ch_lost:l1", "ch_ok:o1"])
      }).pipe(Effect.scoped)
  )

  it.live("two batches of one channel go in successive rounds, in the order they came", () =>
    Effect.gen(function* () {
      const { report, rounds, hold, let: letGo } = yield* recordedRounds(() => "applied")
      yield* hold
      const blocker = yield* Effect.forkScoped(report(fence("ch_x"), [ack("x0")]))
      yield* waitUntil(
        "the first round runs",
        Effect.sync(() => rounds.length === 1)
      )
      // each handed in as it is forked, one after the other
      const earlier = yield* Effect.forkScoped(report(fence("ch_a", 1), [ack("a1")]), {
        startImmediately: true
      })
      const later = yield* Effect.forkScoped(report(fence("ch_a", 2), [ack("a2")]), {
        startImmediately: true
      })
      yield* letGo
      yield* Fiber.join(blocker)
      yield* Fiber.join(earlier)
      yield* Fiber.join(later)
      expect(rounds).toEqual([["ch_x:x0"], ["ch_a:a1"], ["ch_a:a2"]])
    }).pipe(Effect.scoped)
  )

  it.live(
    "a round that fails is tried again a moment later, each of its batches alone: one that keeps failing holds back no other",
    () =>
      Effect.gen(function* () {
        const { report, rounds } = yield* recordedRounds((batch, round) =>
          round === 0 || batch.fence.channelId === "ch_bad" ? "die" : "applied"
        )
        const bad = yield* Effect.forkScoped(report(fence("ch_bad"), [ack("x1")]), { startImmediately: true })
        yield* Effect.all([report(fence("ch_a"), [ack("a1")]), report(fence("ch_b"), [ack("b1")])], {
          concurrency: "unbounded"
        })
        // a batch handed in later goes in a round of its own making, not behind the failing one
        yield* report(fence("ch_c"), [ack("c1")])
        const after = rounds.slice(1)
        expect(after.every((round) => round.length === 1 || !round.includes("ch_bad:x1"))).toBe(true)
        expect(after.flat()).toEqual(expect.arrayContaining(["ch_a:a1", "ch_b:b1", "ch_c:c1", "ch_bad:x1"]))
        expect(bad.pollUnsafe(), "the failing batch's caller still waits").toBeUndefined()
      }).pipe(Effect.scoped)
  )
  it.live(
    "a batch held back round after round goes alone, waiting for its channel's row, instead of starving",
    () =>
      Effect.gen(function* () {
        // the channel's row is always locked by others when a round looks without waiting
        const { report, rounds, waited } = yield* recordedRounds((batch, _, wait) =>
          batch.fence.channelId === "ch_busy" && !wait ? "held_back" : "applied"
        )
        yield* Effect.all([report(fence("ch_busy"), [ack("b1")]), report(fence("ch_other"), [ack("o1")])], {
          concurrency: "unbounded"
        })
        expect(waited).toHaveLength(1)
        expect(rounds[waited[0]!]).toEqual(["ch_busy:b1"])
        // held back each round before it waited
        expect(
          rounds.slice(0, waited[0]!).filter((round) => round.includes("ch_busy:b1")).length
        ).toBeGreaterThanOrEqual(16)
      }).pipe(Effect.scoped)
  )
})
