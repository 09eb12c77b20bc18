import { PgClient } from "@effect/sql-pg"
import type { ChannelId } from "@whatisup/domain"
import { Context, Deferred, Effect, Layer, Queue, Schedule, type Scope } from "effect"

/** The NOTIFY channel a committed send (or read receipt asked for) names its channel on. */
export const outboxChannel = "whatisup_outbox"

/**
 * How long a drain waits for a notification before it looks anyway, should one be lost (listening
 * again wakes every drain): long, since every running channel of the process looks this often.
 */
export const outboxPollInterval = "30 seconds"

interface Watch {
  dirty: boolean
  waiter: Deferred.Deferred<void> | undefined
}

/**
 * Wakes a channel's drain when something was queued for it, in any process (LISTEN). Only channels
 * whose drain watches them are tracked, so what it holds is bounded by the channels this process
 * runs; a notification that arrives while the drain is busy is kept as a flag, not lost.
 */
export class OutboxSignal extends Context.Service<
  OutboxSignal,
  {
    /** Watches the channel for as long as the scope lasts; the answer waits for its next notification (or the poll interval). */
    readonly watch: (channelId: ChannelId) => Effect.Effect<Effect.Effect<void>, never, Scope.Scope>
    /** Wakes the channel's drain in this process, as a notification would. */
    readonly wake: (channelId: string) => void
  }
>()("whatisup/OutboxSignal") {}

export const layerOutboxSignal = Layer.effect(
  OutboxSignal,
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const watches = new Map<string, Watch>()
    const wake = (channelId: string) => {
      const watch = watches.get(channelId)
      if (watch === undefined) return
      watch.dirty = true
      if (watch.waiter !== undefined) Deferred.doneUnsafe(watch.waiter, Effect.void)
    }
    const wakeAll = () => {
      for (const channelId of watches.keys()) wake(channelId)
    }
    yield* Effect.forkScoped(
      Effect.gen(function* () {
        const notifications = yield* sql.listen(outboxChannel)
        // what was queued while nobody listened
        wakeAll()
        yield* Effect.forever(
          Effect.map(Queue.take(notifications), (notification) => wake(notification.payload))
        )
      }).pipe(
        Effect.scoped,
        Effect.catchCause((cause) => Effect.logWarning("outbox notifications lost; listening again", cause)),
        Effect.repeat(Schedule.spaced("1 second"))
      )
    )
    return OutboxSignal.of({
      wake,
      watch: (channelId) =>
        Effect.gen(function* () {
          const watch: Watch = { dirty: true, waiter: undefined }
          yield* Effect.acquireRelease(
            Effect.sync(() => watches.set(channelId, watch)),
            () => Effect.sync(() => watches.get(channelId) === watch && watches.delete(channelId))
          )
          return Effect.gen(function* () {
            if (!watch.dirty) {
              const waiter = yield* Deferred.make<void>()
              watch.waiter = waiter
              yield* Deferred.await(waiter).pipe(Effect.timeoutOption(outboxPollInterval))
              watch.waiter = undefined
            }
            watch.dirty = false
          })
        })
    })
  })
)
