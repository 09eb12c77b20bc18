import { PgClient } from "@effect/sql-pg"
import type { ChannelId } from "@whatisup/domain"
import { Context, Deferred, Effect, Layer, Queue, Schedule, type Scope } from "effect"
import { GatewayConfigService } from "../config/config.ts"

/** The NOTIFY channel a committed send (or read receipt asked for) names its channel on. */
export const outboxChannel = "whatisup_outbox"

/**
 * How often the process looks for work a notification should have announced, should one be lost
 * (listening again wakes every drain too). One statement for all the channels the process runs: an
 * idle channel costs the database nothing.
 */
export const outboxSweepInterval = "30 seconds"

/** A sweep that takes longer (a database that hangs) is given up, so that the next one still runs. */
const sweepTimeout = "10 seconds"

interface Watch {
  dirty: boolean
  waiter: Deferred.Deferred<void> | undefined
}

/**
 * Wakes a channel's drain when something was queued for it, in any process (LISTEN). Only channels
 * whose drain watches them are tracked, so what it holds is bounded by the channels this process
 * runs; a notification that arrives while the drain is busy is kept as a flag, not lost. A sweep
 * wakes the drains of this node's channels that have messages queued or read receipts pending, so
 * that a lost notification delays work, never strands it.
 */
export class OutboxSignal extends Context.Service<
  OutboxSignal,
  {
    /** Watches the channel for as long as the scope lasts; the answer waits for its next notification (or a sweep that finds work). */
    readonly watch: (channelId: ChannelId) => Effect.Effect<Effect.Effect<void>, never, Scope.Scope>
    /** Wakes the channel's drain in this process, as a notification would. */
    readonly wake: (channelId: string) => void
  }
>()("whatisup/OutboxSignal") {}

export const layerOutboxSignal = Layer.effect(
  OutboxSignal,
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const { nodeId } = yield* GatewayConfigService
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
    // the channels this node holds with work waiting: a probe of each partial index the drains read,
    // for each of them (not the whole cluster's backlog, which may be large)
    const sweep = Effect.suspend(() =>
      watches.size === 0
        ? Effect.void
        : sql<{ channel_id: string }>`
            SELECT l.channel_id FROM channel_leases l
            WHERE l.owner = ${nodeId}
              AND (EXISTS (SELECT 1 FROM messages m WHERE m.channel_id = l.channel_id AND m.status = 'queued')
                OR EXISTS (
                  SELECT 1 FROM messages m WHERE m.channel_id = l.channel_id AND m.read_receipt = 'pending'))`.pipe(
            Effect.timeout(sweepTimeout),
            Effect.map((rows) => rows.forEach((row) => wake(row.channel_id))),
            Effect.catchCause((cause) => Effect.logWarning("could not look for outbox work", cause))
          )
    )
    yield* Effect.forkScoped(Effect.repeat(sweep, Schedule.spaced(outboxSweepInterval)))
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
              yield* Deferred.await(waiter)
              watch.waiter = undefined
            }
            watch.dirty = false
          })
        })
    })
  })
)
