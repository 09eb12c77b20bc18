import { ChannelId, ChannelStatus } from "@whatisup/domain"
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
  Schema,
  Semaphore
} from "effect"
import { decodeRows } from "../db/transaction.ts"
import type { AuthStates } from "./loginStore.ts"
import type { WhatsAppTransport } from "./transport.ts"
import { Disconnected, runChannel } from "./actor.ts"
import { type Fence, Leases } from "./leases.ts"
import type { ChannelLifecycle } from "./lifecycle.ts"
import { channelsChangedChannel } from "./rows.ts"
import { isRunning, runningStatuses } from "./status.ts"

const restarts = Metric.counter("channel_actor_restarts_total", {
  description: "Channel actor restarts by reason"
})
const takeovers = Metric.counter("channel_lease_takeovers_total", {
  description: "Channel leases taken over from another node"
})
const channelsByStatus = Metric.gauge("channels", { description: "Channels by status, across every node" })
const actorsHere = Metric.gauge("channel_actors", { description: "Channel actors running in this process" })

const allStatuses = ChannelStatus.literals

const HeldRow = Schema.Struct({
  id: ChannelId,
  desired: Schema.String,
  status: ChannelStatus,
  run_epoch: Schema.Number
})
const CandidateRow = Schema.Struct({ id: ChannelId, run_epoch: Schema.Number })

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
  /** The channel's run epoch the actor was started for. */
  readonly epoch: number
  /** Past this (local clock), the lease may be someone else's: the actor stops even without the database. */
  deadline: number
}

/**
 * Runs the channels this process holds leases for, one supervised actor each, keyed by channel id.
 * A heartbeat renews the leases (and stops any actor whose lease is lost, or can no longer be known
 * to be held); a reconciler (at start, on NOTIFY, on a timer, and when a lease elsewhere expires)
 * makes what runs match what the database says should run and takes this process's fair share.
 */
export class Supervisor extends Context.Service<
  Supervisor,
  {
    readonly running: Effect.Effect<ReadonlyArray<ChannelId>>
    readonly reconcile: Effect.Effect<void>
  }
>()("whatisup/Supervisor") {}

/** Restarts an actor as its disconnects ask, until the channel should stop; interrupting it closes everything. */
const supervise = (fence: Fence, epoch: number) =>
  Effect.gen(function* () {
    let attempt = 0
    for (;;) {
      const started = yield* Clock.currentTimeMillis
      const exit = yield* Effect.exit(runChannel(fence, epoch))
      if (Exit.isSuccess(exit)) return
      if (Cause.hasInterruptsOnly(exit.cause)) return yield* Effect.interrupt
      if ((yield* Clock.currentTimeMillis) - started >= Duration.toMillis(backoff.stable)) attempt = 0
      const failure = exit.cause.reasons.find(Cause.isFailReason)?.error
      if (failure instanceof Disconnected && failure.retry === "now") {
        yield* Metric.update(Metric.withAttributes(restarts, { reason: `code_${failure.code}` }), 1)
        // an immediate restart is WhatsApp's own request; a second one in a row, with no login
        // between them, waits like any other disconnect
        if (attempt === 0 || failure.wasOpen) {
          attempt = failure.wasOpen ? 0 : 1
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
    const held = new Map<ChannelId, Held>()
    const ttlMillis = Duration.toMillis(leases.ttl)
    const tick = Math.max(200, ttlMillis / 5)
    // an actor stops this long before its lease could expire unrenewed, so two never overlap
    const margin = Math.min(ttlMillis / 3, 2_000)

    // registered before the actors' map, so it runs after every actor has stopped
    yield* Effect.addFinalizer(() => Effect.andThen(leases.release([...held.keys()]), leases.leave))
    const actors = yield* FiberMap.make<ChannelId>()
    const context = yield* Effect.context<WhatsAppTransport | ChannelLifecycle | AuthStates>()
    const oneAtATime = yield* Semaphore.make(1)
    // counted by the heartbeat; the reconciler divides the channels by it
    let liveNodes = yield* leases.heartbeat

    const start = (fence: Fence, epoch: number) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        held.set(fence.channelId, { fence, epoch, deadline: now + ttlMillis - margin })
        yield* FiberMap.run(
          actors,
          fence.channelId,
          supervise(fence, epoch).pipe(Effect.provideContext(context))
        )
      })

    /** Stops actors (their finalizers close the sockets) before their leases are handed back. */
    const stop = (channelIds: ReadonlyArray<ChannelId>) =>
      Effect.gen(function* () {
        yield* Effect.forEach(channelIds, (id) => FiberMap.remove(actors, id), {
          discard: true,
          concurrency: 64
        })
        for (const id of channelIds) held.delete(id)
        yield* leases.release(channelIds)
      })

    /** Drops actors without touching the database: their leases are, or may be, someone else's. */
    const abandon = (channelIds: ReadonlyArray<ChannelId>, why: string) =>
      Effect.gen(function* () {
        if (channelIds.length === 0) return
        for (const id of channelIds) held.delete(id)
        yield* Effect.logWarning(`stopping channel actors: ${why}`).pipe(
          Effect.annotateLogs({ channels: channelIds.join(",") })
        )
        yield* Effect.forkDetach(
          Effect.forEach(channelIds, (id) => FiberMap.remove(actors, id), { discard: true, concurrency: 64 })
        )
      })

    const heartbeat = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      yield* abandon(
        [...held.values()].filter((h) => h.deadline < now).map((h) => h.fence.channelId),
        "their leases could not be renewed in time"
      )
      liveNodes = yield* leases.heartbeat
      const renewedAt = yield* Clock.currentTimeMillis
      const renewed = new Set(
        (yield* leases.renew([...held.values()].map((h) => h.fence))).map(
          (f) => `${f.channelId}:${f.generation}`
        )
      )
      const lost: Array<ChannelId> = []
      for (const h of held.values()) {
        if (renewed.has(`${h.fence.channelId}:${h.fence.generation}`))
          h.deadline = renewedAt + ttlMillis - margin
        else lost.push(h.fence.channelId)
      }
      yield* abandon(lost, "their leases were lost")
      yield* Metric.update(actorsHere, held.size)
    }).pipe(
      Effect.catchCause((cause) => Effect.logWarning("channel lease heartbeat failed; retrying", cause))
    )

    /** Makes what runs here match the database; says how long until a lease elsewhere expires. */
    const reconcileOnce = Effect.gen(function* () {
      const heldIds = [...held.keys()]
      const heldRows = yield* sql`
        SELECT id, desired, status, run_epoch::int AS run_epoch
        FROM channels WHERE id IN (SELECT jsonb_array_elements_text(${JSON.stringify(heldIds)}::jsonb))`.pipe(
        decodeRows(HeldRow)
      )
      const rowsById = new Map(heldRows.map((row) => [row.id, row]))
      const shouldRun = (row: typeof HeldRow.Type | undefined) =>
        row !== undefined && row.desired === "running" && isRunning(row.status)
      yield* stop(heldIds.filter((id) => !shouldRun(rowsById.get(id))))
      for (const [id, entry] of held) {
        const row = rowsById.get(id)!
        if (row.run_epoch !== entry.epoch || !(yield* FiberMap.has(actors, id))) {
          // asked to connect, restart or log out since the actor started (or it ended): a fresh one
          yield* FiberMap.remove(actors, id)
          yield* start(entry.fence, row.run_epoch)
        }
      }

      const totals = yield* sql<{ status: ChannelStatus; n: number }>`
        SELECT status, count(*)::int AS n FROM channels GROUP BY status`
      const counted = new Map(totals.map((row) => [row.status, row.n]))
      for (const status of allStatuses) {
        yield* Metric.update(Metric.withAttributes(channelsByStatus, { status }), counted.get(status) ?? 0)
      }

      // this process's fair share of what should run and nobody runs
      const runnableCount = yield* sql<{ n: number }>`
        SELECT count(*)::int AS n FROM channels
        WHERE desired = 'running' AND status IN ${sql.in(runningStatuses)}`
      const fairShare = Math.ceil((runnableCount[0]?.n ?? 0) / liveNodes)
      const budget = fairShare - held.size
      if (budget > 0) {
        const candidates = yield* sql`
          SELECT c.id, c.run_epoch::int AS run_epoch
          FROM channels c LEFT JOIN channel_leases l ON l.channel_id = c.id
          WHERE c.desired = 'running' AND c.status IN ${sql.in(runningStatuses)}
            AND (l.channel_id IS NULL OR l.expires_at < now() OR l.owner = ${leases.nodeId})
            AND c.id NOT IN (SELECT jsonb_array_elements_text(${JSON.stringify([...held.keys()])}::jsonb))
          ORDER BY (l.owner = ${leases.nodeId}) DESC NULLS LAST, c.id
          LIMIT ${budget}`.pipe(decodeRows(CandidateRow))
        const claimed = yield* leases.claim(candidates.map((c) => c.id))
        const epochs = new Map(candidates.map((c) => [c.id, c.run_epoch]))
        for (const lease of claimed) {
          if (lease.takenFrom !== null) yield* Metric.update(takeovers, 1)
          yield* start(
            { channelId: lease.channelId, generation: lease.generation },
            epochs.get(lease.channelId) ?? 0
          )
        }
      } else if (liveNodes > 1 && held.size > fairShare + 1) {
        // another process came up: hand it what is beyond this one's share
        yield* stop([...held.keys()].slice(fairShare))
      }
      yield* Metric.update(actorsHere, held.size)

      // wake when the next lease held elsewhere expires, to take over without waiting for a tick
      const next = yield* sql<{ millis: number | null }>`
        SELECT (extract(epoch FROM min(l.expires_at) - now()) * 1000)::float8 AS millis
        FROM channel_leases l JOIN channels c ON c.id = l.channel_id
        WHERE l.owner <> ${leases.nodeId} AND l.expires_at > now()
          AND c.desired = 'running' AND c.status IN ${sql.in(runningStatuses)}`
      const millis = next[0]?.millis
      return millis === null || millis === undefined ? tick : Math.max(50, Math.min(tick, millis + 50))
    }).pipe(
      Effect.catchCause((cause) =>
        Effect.as(Effect.logWarning("channel reconcile failed; retrying", cause), tick)
      )
    )
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
      Effect.forever(
        Effect.flatMap(reconcile, (millis) =>
          Effect.raceFirst(Queue.take(wake), Effect.sleep(Duration.millis(millis)))
        )
      )
    )
    yield* Effect.forkScoped(Effect.repeat(heartbeat, Schedule.spaced(Duration.millis(tick))))

    return Supervisor.of({
      running: Effect.sync(() => [...held.keys()]),
      reconcile: Effect.asVoid(reconcile)
    })
  })
)
