import { Data, Deferred, Effect, FiberSet, Queue, type Scope } from "effect"
import type { LeaseLost } from "./leases.ts"
import type { StatusReport } from "./messaging.ts"
import type { MessageReceipt } from "./transport.ts"

/** Receipts left unstored: the connection's reports stopped (its lease is lost, or it ended). */
export class ReceiptsNotStored extends Data.TaggedError("ReceiptsNotStored")<{ readonly reason: string }> {}

interface Entry {
  readonly report: StatusReport
  /** Completed once the batch holding this entry is stored: set on the last receipt of a `store`. */
  readonly stored: Deferred.Deferred<void, ReceiptsNotStored> | undefined
}

/**
 * A connection's acks and receipts, applied by `apply` in batches of up to 500, in the order they
 * came, on a fiber of `background`: no transaction per receipt. `store` answers once its receipts'
 * batch is stored, for WhatsApp to hear of them only then. Once a batch is refused (the lease is
 * lost) or the scope closes, every receipt still waiting and every later one fails, to be delivered
 * again by WhatsApp.
 */
export const makeStatusReports = (
  apply: (batch: ReadonlyArray<StatusReport>) => Effect.Effect<unknown, LeaseLost>,
  background: FiberSet.FiberSet<unknown, unknown>
): Effect.Effect<
  {
    readonly offer: (report: StatusReport) => void
    readonly store: (receipts: ReadonlyArray<MessageReceipt>) => Effect.Effect<void, ReceiptsNotStored>
  },
  never,
  Scope.Scope
> =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<Entry>()
    const waiting = new Set<Deferred.Deferred<void, ReceiptsNotStored>>()
    let stopped: ReceiptsNotStored | undefined
    const stop = (reason: string) =>
      Effect.sync(() => {
        stopped ??= new ReceiptsNotStored({ reason })
        for (const stored of waiting) Deferred.doneUnsafe(stored, Effect.fail(stopped))
        waiting.clear()
      })
    yield* Effect.addFinalizer(() => stop("the connection ended"))

    const stored = (batch: ReadonlyArray<Entry>) =>
      Effect.sync(() => {
        for (const entry of batch) {
          if (entry.stored === undefined) continue
          Deferred.doneUnsafe(entry.stored, Effect.void)
          waiting.delete(entry.stored)
        }
      })
    yield* FiberSet.run(
      background,
      Effect.forever(
        Effect.flatMap(Queue.takeBetween(queue, 1, 500), (batch) =>
          Effect.andThen(apply(batch.map((entry) => entry.report)), stored(batch))
        )
      ).pipe(Effect.catchTag("LeaseLost", () => stop("the channel's lease is lost")))
    )

    return {
      offer: (report) => void Queue.offerUnsafe(queue, { report, stored: undefined }),
      store: (receipts) =>
        Effect.suspend(() => {
          if (stopped !== undefined) return Effect.fail(stopped)
          if (receipts.length === 0) return Effect.void
          // batches are applied in order: the last receipt's batch stored means all of them are
          const done = Deferred.makeUnsafe<void, ReceiptsNotStored>()
          waiting.add(done)
          receipts.forEach((receipt, i) =>
            Queue.offerUnsafe(queue, {
              report: { _tag: "Receipt", whatsappId: receipt.messageId, receipt: receipt.receipt },
              stored: i === receipts.length - 1 ? done : undefined
            })
          )
          return Deferred.await(done)
        })
    }
  })
