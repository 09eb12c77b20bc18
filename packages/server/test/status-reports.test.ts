import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, FiberSet, Scope } from "effect"
import { LeaseLost } from "../src/channels/leases.ts"
import type { StatusReport } from "../src/channels/messaging.ts"
import { makeStatusReports } from "../src/channels/statusReports.ts"
import { testChannel } from "./support/baileys.ts"
import { waitUntil } from "./support/waits.ts"

/**
 * A connection's status reports over an `apply` that records each batch and waits for `letGo` to be
 * told how to end it (stored, or refused by a lost lease).
 */
const reportsOver = Effect.gen(function* () {
  const batches: Array<ReadonlyArray<StatusReport>> = []
  const pending: Array<Deferred.Deferred<void, LeaseLost>> = []
  const scope = yield* Scope.make()
  const background = yield* FiberSet.make().pipe(Scope.provide(scope))
  const reports = yield* makeStatusReports(
    (batch) =>
      Effect.suspend(() => {
        batches.push(batch)
        const done = Deferred.makeUnsafe<void, LeaseLost>()
        pending.push(done)
        return Deferred.await(done)
      }),
    background
  ).pipe(Scope.provide(scope))
  const letGo = (outcome: "stored" | "lease lost") =>
    Effect.suspend(() => {
      const done = pending.shift()!
      return outcome === "stored"
        ? Deferred.succeed(done, undefined)
        : Deferred.fail(done, new LeaseLost({ channelId: testChannel }))
    })
  return { reports, batches, pending, letGo, close: Scope.close(scope, Exit.void) }
})

const receipt = (messageId: string) => ({ messageId, receipt: "delivered" as const })

describe("a connection's acks and receipts, stored in batches", () => {
  it.live(
    "receipts that wait together are stored in one batch, in order with the acks, each answered once its batch is stored",
    () =>
      Effect.gen(function* () {
        const { reports, batches, pending, letGo, close } = yield* reportsOver
        reports.offer({ _tag: "ServerAck", whatsappId: "A", error: null })
        yield* waitUntil(
          "the ack's batch is being stored",
          Effect.sync(() => pending.length === 1)
        )
        // while it is, receipts arrive one by one and wait
        const first = yield* Effect.forkChild(reports.store([receipt("A")]))
        const second = yield* Effect.forkChild(reports.store([receipt("B"), receipt("C")]))
        yield* letGo("stored")
        yield* waitUntil(
          "the receipts' batch is being stored",
          Effect.sync(() => pending.length === 1)
        )
        expect(batches.map((batch) => batch.map((report) => report.whatsappId))).toEqual([
          ["A"],
          ["A", "B", "C"]
        ])
        expect(first.pollUnsafe()).toBeUndefined()
        expect(second.pollUnsafe()).toBeUndefined()
        yield* letGo("stored")
        expect(yield* Fiber.await(first)).toEqual(Exit.void)
        expect(yield* Fiber.await(second)).toEqual(Exit.void)
        yield* close
      })
  )

  it.live("a batch refused by a lost lease fails every receipt waiting and every later one", () =>
    Effect.gen(function* () {
      const { reports, pending, letGo, close } = yield* reportsOver
      const inBatch = yield* Effect.forkChild(reports.store([receipt("A")]))
      yield* waitUntil(
        "the batch is being stored",
        Effect.sync(() => pending.length === 1)
      )
      const queued = yield* Effect.forkChild(reports.store([receipt("B")]))
      yield* letGo("lease lost")
      expect(Exit.isFailure(yield* Fiber.await(inBatch))).toBe(true)
      expect(Exit.isFailure(yield* Fiber.await(queued))).toBe(true)
      expect(Exit.isFailure(yield* Effect.exit(reports.store([receipt("C")])))).toBe(true)
      yield* close
    })
  )

  it.live("a receipt still waiting when the connection ends fails, so that it is not acknowledged", () =>
    Effect.gen(function* () {
      const { reports, pending, close } = yield* reportsOver
      const waiting = yield* Effect.forkChild(reports.store([receipt("A")]))
      yield* waitUntil(
        "the batch is being stored",
        Effect.sync(() => pending.length === 1)
      )
      yield* close
      expect(Exit.isFailure(yield* Fiber.await(waiting))).toBe(true)
    })
  )
})
