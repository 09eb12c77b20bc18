import { PgClient } from "@effect/sql-pg"
import {
  Cause,
  Clock,
  Context,
  Duration,
  Effect,
  Exit,
  FiberMap,
  Layer,
  Metric,
  Queue,
  Random,
  Schedule,
  Semaphore
} from "effect"
import { WhatsAppTransport } from "../whatsapp/transport.ts"
import { Disconnected, runChannel } from "./actor.ts"
import { ChannelLifecycle } from "./lifecycle.ts"
import { type Fence, Leases } from "./leases.ts"
import { channelsChangedChannel } from "./rows.ts"
import { runningStatuses } from "./status.ts"

const restarts = Metric.counter("channel_actor_restarts_total", {
  description: "Channel actor restarts by reason"
})
const takeovers = Metric.counter("channel_lease_takeovers_total", {
  description: "Channel leases taken over from an expired or earlier owner"
})
const channelsByStatus = Metric.gauge("channels", { description: "Channels by status, across every node" })
const actorsHere = Metric.gauge("channel_actors", { description: "Channel actors running in this process" })

/** Backoff between reconnects: exponential from 1 s to 5 min, ±20 % jitter; reset after a stable minute. */
export const backoff = {
  base: Duration.seconds(1),
  max: Duration.minutes(5),
  stable: Duration.minutes(1),
  delay: (attempt: number) =>
    Effect.map(Random.nextBetween(0.8, 1.2), (jitter) =>
      Duration.millis(
        Math.min(
          Duration.toMillis(backoff.max),
          Duration.toMillis(backoff.base) * 2 ** Math.min(attempt, 20)
        ) * jitter
      )
    )
}

interface Held {
  readonly fence: Fence
  restartSeenAt: number
}

/**
 * Runs the channels this process holds leases for, one supervised actor each, keyed by channel id.
 * A reconciler (at start, on NOTIFY, and on a timer) makes what runs match what the database says
 * should run, takes this process's fair share of unowned channels, renews leases, and stops any
 * actor whose lease was lost.
 */
export class Supervisor extends Context.Service<
  Supervisor,
  {
    readonly running: Effect.Effect<ReadonlyArray<string>>
    readonly reconcile: Effect.Effect<void>
  }
>()("whatisup/Supervisor") {}

/** Restarts an actor as its disconnects ask, until the channel should stop; interrupting it closes everything. */
const supervise = (fence: Fence) =>
  Effect.gen(function* () {
    let attempt = 0
    for (;;) {
      const started = yield* Clock.currentTimeMillis
      const exit = yield* Effect.exit(runChannel(fence))
      if (Exit.isSuccess(exit)) return
      if (Cause.hasInterruptsOnly(exit.cause)) return yield* Effect.interrupt
      if ((yield* Clock.currentTimeMillis) - started >= Duration.toMillis(backoff.stable)) attempt = 0
      const failure = exit.cause.reasons.find(Cause.isFailReason)?.error
      if (failure instanceof Disconnected && failure.retry === "now") {
        yield* Metric.update(Metric.withAttributes(restarts, { reason: `code_${failure.code}` }), 1)
        // an immediate restart is WhatsApp's own request; a second one in a row waits like any other
        if (attempt === 0) {
          attempt = 1
          continue
        }
      } else if (failure?._tag === "LeaseLost") {
        return
      } else {
        const reason =
          failure instanceof Disconnected
            ? failure.code === 0
              ? "connect_failed"
              : `code_${failure.code}`
            : "defect"
        if (reason === "defect") yield* Effect.logError("channel actor failed", exit.cause)
        yield* Metric.update(Metric.withAttributes(restarts, { reason }), 1)
      }
      yield* Effect.sleep(yield* backoff.delay(attempt))
      attempt++
    }
  }).pipe(Effect.annotateLogs({ channel_id: fence.channelId }))

export const layerSupervisor = Layer.effect(
  Supervisor,
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const leases = yield* Leases
    const held = new Map<string, Held>()
    const tick = Duration.millis(Math.max(200, Duration.toMillis(leases.ttl) / 5))

    // registered before the actors' map, so it runs after every actor has stopped
    yield* Effect.addFinalizer(() => Effect.andThen(leases.release([...held.keys()]), leases.leave))
    const actors = yield* FiberMap.make<string>()
    const context = yield* Effect.context<WhatsAppTransport | ChannelLifecycle>()
    const oneAtATime = yield* Semaphore.make(1)

    const start = (fence: Fence, restartSeenAt: number) =>
      Effect.gen(function* () {
        held.set(fence.channelId, { fence, restartSeenAt })
        yield* FiberMap.run(actors, fence.channelId, supervise(fence).pipe(Effect.provideContext(context)))
      })

    const stop = (channelIds: ReadonlyArray<string>) =>
      Effect.gen(function* () {
        yield* Effect.forEach(channelIds, (id) => FiberMap.remove(actors, id), {
          discard: true,
          concurrency: 32
        })
        for (const id of channelIds) held.delete(id)
        yield* leases.release(channelIds)
      })

    const reconcileOnce = Effect.gen(function* () {
      const liveNodes = yield* leases.heartbeat

      // leases renewed, or their actors stopped
      const renewed = new Set(
        (yield* leases.renew([...held.values()].map((h) => h.fence))).map(
          (f) => `${f.channelId}:${f.generation}`
        )
      )
      const lost = [...held.values()].filter(
        (h) => !renewed.has(`${h.fence.channelId}:${h.fence.generation}`)
      )
      if (lost.length > 0) {
        yield* Effect.logWarning("channel leases lost; stopping their actors").pipe(
          Effect.annotateLogs({ channels: lost.map((h) => h.fence.channelId).join(",") })
        )
        yield* Effect.forEach(lost, (h) => FiberMap.remove(actors, h.fence.channelId), { discard: true })
        for (const h of lost) held.delete(h.fence.channelId)
      }

      // what is held but should no longer run, or was asked to restart
      const heldIds = [...held.keys()]
      const heldRows = yield* sql<{ id: string; desired: string; status: string; restart_at: number | null }>`
        SELECT id, desired, status, (extract(epoch FROM restart_requested_at) * 1000)::float8 AS restart_at
        FROM channels WHERE id IN (SELECT jsonb_array_elements_text(${JSON.stringify(heldIds)}::jsonb))`
      const rowsById = new Map(heldRows.map((row) => [row.id, row]))
      const toStop = heldIds.filter((id) => {
        const row = rowsById.get(id)
        return (
          row === undefined ||
          row.desired !== "running" ||
          !(runningStatuses as ReadonlyArray<string>).includes(row.status)
        )
      })
      if (toStop.length > 0) yield* stop(toStop)
      for (const [id, entry] of held) {
        const row = rowsById.get(id)!
        const restartAt = row.restart_at ?? 0
        const alive = yield* FiberMap.has(actors, id)
        if (restartAt > entry.restartSeenAt || !alive) {
          yield* FiberMap.remove(actors, id)
          yield* start(entry.fence, restartAt)
        }
      }

      // this process's fair share of what should run and nobody runs
      const totals = yield* sql<{ status: string; n: number }>`
        SELECT status, count(*)::int AS n FROM channels GROUP BY status`
      for (const { status, n } of totals)
        yield* Metric.update(Metric.withAttributes(channelsByStatus, { status }), n)
      const runnable = yield* sql<{ n: number }>`
        SELECT count(*)::int AS n FROM channels
        WHERE desired = 'running' AND status IN ('pairing', 'connecting', 'connected', 'reconnecting')`
      const fairShare = Math.ceil((runnable[0]?.n ?? 0) / liveNodes)
      const budget = fairShare - held.size
      if (budget > 0) {
        const candidates = yield* sql<{ id: string; restart_at: number | null }>`
          SELECT c.id, (extract(epoch FROM c.restart_requested_at) * 1000)::float8 AS restart_at
          FROM channels c LEFT JOIN channel_leases l ON l.channel_id = c.id
          WHERE c.desired = 'running' AND c.status IN ('pairing', 'connecting', 'connected', 'reconnecting')
            AND (l.channel_id IS NULL OR l.expires_at < now() OR l.owner = ${leases.nodeId})
            AND c.id NOT IN (SELECT jsonb_array_elements_text(${JSON.stringify([...held.keys()])}::jsonb))
          ORDER BY (l.owner = ${leases.nodeId}) DESC NULLS LAST, c.id
          LIMIT ${budget}`
        const claimed = yield* leases.claim(candidates.map((c) => c.id))
        const restartAt = new Map(candidates.map((c) => [c.id, c.restart_at ?? 0]))
        for (const fence of claimed) {
          if (fence.generation > 1) yield* Metric.update(takeovers, 1)
          yield* start(fence, restartAt.get(fence.channelId) ?? 0)
        }
      } else if (liveNodes > 1 && held.size > fairShare + 1) {
        // another process came up: hand it what is beyond this one's share
        yield* stop([...held.keys()].slice(fairShare))
      }
      yield* Metric.update(actorsHere, held.size)
    }).pipe(Effect.catchCause((cause) => Effect.logWarning("channel reconcile failed; retrying", cause)))
    const reconcile = Semaphore.withPermits(oneAtATime, 1)(reconcileOnce)

    const wake = yield* Queue.sliding<void>(1)
    yield* Effect.forkScoped(
      Effect.gen(function* () {
        const notifications = yield* sql.listen(channelsChangedChannel)
        yield* Queue.offer(wake, undefined)
        yield* Effect.forever(Effect.andThen(Queue.take(notifications), Queue.offer(wake, undefined)))
      }).pipe(
        Effect.scoped,
        Effect.catchCause((cause) => Effect.logWarning("channel notifications lost; listening again", cause)),
        Effect.repeat(Schedule.spaced("1 second"))
      )
    )
    yield* Effect.forkScoped(
      Effect.forever(Effect.andThen(reconcile, Effect.raceFirst(Queue.take(wake), Effect.sleep(tick))))
    )

    return Supervisor.of({
      running: Effect.sync(() => [...held.keys()]),
      reconcile
    })
  })
)
