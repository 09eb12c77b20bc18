import { ChannelId, ChannelStatus } from "@whatisup/domain"
import { PgClient } from "@effect/sql-pg"
import {
  Cause,
  Clock,
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  FiberMap,
  Layer,
  Metric,
  Option,
  Queue,
  Random,
  Schedule,
  Schema,
  Scope,
  Semaphore
} from "effect"
import { decodeRows } from "../db/transaction.ts"
import { channelReconnectBackoff, drawNextDelay } from "../retry/retryPolicy.ts"
import type { AuthStates } from "./loginStore.ts"
import type { ChannelMessaging } from "./messaging.ts"
import type { WhatsAppTransport } from "./transport.ts"
import { Disconnected, runChannel, type StopCell, type StopIntent } from "./actor.ts"
import {
  type Fence,
  Leases,
  presenceCheckEvery,
  presenceCloseAllowance,
  presenceVouches,
  watchdogEvery
} from "./leases.ts"
import { Change, ChannelLifecycle } from "./lifecycle.ts"
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
const reconciles = Metric.counter("channel_reconciles_total", {
  description: "Reconciles of what runs here with the database (a burst of changes makes one)"
})

/** Deleted channels stay as rows, but are not counted: the gauge stays cheap however many there were. */
const countedStatuses = ChannelStatus.literals.filter((status) => status !== "deleted")

const HeldRow = Schema.Struct({
  id: ChannelId,
  desired: Schema.String,
  status: ChannelStatus,
  run_epoch: Schema.Number,
  unlink_epoch: Schema.Number,
  owner: Schema.NullOr(Schema.String),
  generation: Schema.NullOr(Schema.Number)
})

/** Reconnects back off as the shared policy says; `failures` counts those in a row, from 0. */
const reconnectDelay = (failures: number) =>
  // the reconnect policy never gives up, so there always is a next pause
  Effect.map(drawNextDelay(channelReconnectBackoff, { attempt: failures + 1 }), Option.getOrThrow)

/** A connection that lasted this long was stable: the next drop backs off from the start again. */
const stablePeriod = Duration.minutes(1)

interface Held {
  readonly fence: Fence
  /** The channel's run epoch the actor was started for. */
  readonly epoch: number
  /** Why the actor is being stopped, for its finalizers. */
  readonly cell: StopCell
  /** The actor ended on its own although the channel should run: not restarted before this (monotonic ms). */
  retryAt: number
  /** How many times in a row the actor ended on its own. */
  endings: number
}

/** Whatever clock the gateway runs on, leases live in real time: their loops keep the real clock. */
const realClock = Clock.Clock.defaultValue()
const monotonicMillis = () => Number(realClock.monotonicTimeNanosUnsafe() / 1_000_000n)

/** Statements a starting node tries to join the leases with before it gives up. */
const joinAttempts = 20

/**
 * Leases one reconcile claims at most. A process joining thousands of channels takes its share over
 * several rounds, each claim well within the lease statements' time limit (a fifth of the TTL): in one
 * statement, a share of 3,334 channels overran it on a busy database, again at every round, and the
 * process never took any.
 */
export const maxClaimsPerRound = 250

/** Connects to WhatsApp a process starts at most every this often (100 a second), plus jitter. */
const connectSpacingMillis = 10

/** How long a woken reconciler waits for the rest of a burst of notifications. */
const burstMillis = 50

/** Consecutive 440s (connection replaced) while still holding the lease before the channel fails. */
const maxReplaced = 3
/**
 * Consecutive QR rounds (codes shown, nobody scanned) before the channel rests as `qr_timeout`. Pairing
 * by code has one round (each would push a new prompt to the phone): the actor ends it as `pairing_code_timeout`.
 */
const maxPairingRounds = 3

/**
 * Runs the channels this process holds leases for, one supervised actor each, keyed by channel id.
 * A heartbeat renews the node's lease on connections of its own, a watchdog with no I/O stops every
 * actor once that lease could have lapsed, and a reconciler (at start, on NOTIFY, on a timer, and when
 * a lease elsewhere expires) makes what runs match what the database says should run and takes this
 * process's fair share.
 */
export class Supervisor extends Context.Service<
  Supervisor,
  {
    readonly running: Effect.Effect<ReadonlyArray<ChannelId>>
    readonly reconcile: Effect.Effect<void>
  }
>()("whatisup/Supervisor") {}

/** How one life of an actor ended, as the supervisor decides on it. */
type Ending =
  | { readonly _tag: "Stopped" | "Interrupted" | "LeaseLost" | "Defect" }
  | {
      readonly _tag: "Disconnected"
      readonly code: number
      readonly retry: "now" | "backoff"
      readonly wasOpen: boolean
      readonly whilePairing: boolean
    }

/**
 * Runs one life of the actor and sums up how it ended, keeping nothing of it: an error holds its
 * stack's frames until the stack is read, and through them the ended connection and its socket,
 * which the supervisor's loop would otherwise keep for as long as the next connection lasts.
 */
const runOnce = (fence: Fence, cell: StopCell) =>
  Effect.flatMap(Effect.exit(runChannel(fence, cell)), (exit): Effect.Effect<Ending> => {
    if (Exit.isSuccess(exit)) return Effect.succeed({ _tag: "Stopped" })
    if (Cause.hasInterruptsOnly(exit.cause)) return Effect.succeed({ _tag: "Interrupted" })
    const failure = exit.cause.reasons.find(Cause.isFailReason)?.error
    if (failure?._tag === "LeaseLost") return Effect.succeed({ _tag: "LeaseLost" })
    if (failure instanceof Disconnected) {
      const { code, retry, wasOpen, whilePairing } = failure
      return Effect.succeed({ _tag: "Disconnected", code, retry, wasOpen, whilePairing })
    }
    return Effect.as(Effect.logError("channel actor failed", exit.cause), { _tag: "Defect" })
  })

/** Restarts an actor as its disconnects ask, until the channel should stop; interrupting it closes everything. */
const supervise = (fence: Fence, cell: StopCell) =>
  Effect.gen(function* () {
    const lifecycle = yield* ChannelLifecycle
    let attempt = 0
    let restartsAfterLogin = 0
    let replaced = 0
    let pairingRounds = 0
    for (;;) {
      const started = yield* Clock.currentTimeMillis
      // the actor itself ends the last round as a QR timeout, with the round's one event
      cell.lastPairingRound = pairingRounds + 1 >= maxPairingRounds
      const failure = yield* runOnce(fence, cell)
      if (failure._tag === "Stopped") return
      if (failure._tag === "Interrupted") return yield* Effect.interrupt
      if ((yield* Clock.currentTimeMillis) - started >= Duration.toMillis(stablePeriod)) {
        attempt = 0
        restartsAfterLogin = 0
        replaced = 0
      }
      // the lease went elsewhere (a 440 from the new owner's login ends here too): stop quietly
      if (failure._tag === "LeaseLost") return
      if (failure._tag === "Disconnected") {
        replaced = failure.code === 440 ? replaced + 1 : 0
        pairingRounds = failure.whilePairing ? pairingRounds + 1 : 0
        if (replaced >= maxReplaced) {
          yield* lifecycle.record(
            fence,
            Change.Failed({ reason: "connection_replaced: another session took over this device (440)" })
          )
          return
        }
        yield* Metric.update(
          Metric.withAttributes(restarts, {
            reason: failure.code === 0 ? "connect_failed" : `code_${failure.code}`
          }),
          1
        )
        if (failure.retry === "now") {
          // an immediate restart is WhatsApp's own request; a second one in a row waits like any
          // other disconnect, whether or not the connection logged in between them
          if (failure.wasOpen) {
            restartsAfterLogin++
            if (restartsAfterLogin === 1) {
              attempt = 0
              continue
            }
          } else if (attempt === 0) {
            attempt = 1
            continue
          }
        } else {
          restartsAfterLogin = 0
        }
      } else {
        yield* Metric.update(Metric.withAttributes(restarts, { reason: "defect" }), 1)
      }
      yield* Effect.sleep(yield* reconnectDelay(attempt))
      attempt++
    }
  }).pipe(Effect.annotateLogs({ channel_id: fence.channelId }))

export const layerSupervisor = Layer.effect(
  Supervisor,
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const leases = yield* Leases
    const held = new Map<ChannelId, Held>()
    /** Actors being stopped in the background: a channel's next actor starts only once its last one closed. */
    const closing = new Map<ChannelId, Fiber.Fiber<void>>()
    const ttlMillis = Duration.toMillis(leases.ttl)
    const tick = Math.max(200, ttlMillis / 5)
    // NOTIFY and lease expiries wake the reconciler; the timer is only its fallback
    const reconcileEvery = Math.max(tick, 5_000)
    const watchEvery = Duration.toMillis(watchdogEvery(leases.ttl))
    // an actor stops this long before its lease could expire unrenewed: more than a watchdog check
    // and the time to close its socket, so that the next owner (who also waits the grace) never overlaps
    const margin = Math.max(ttlMillis / 5, Duration.toMillis(presenceCloseAllowance(leases.ttl)))

    // the node's presence (its own session and lock), closed last: its channels are taken over early
    // only once every actor here has stopped and the leases are handed back
    const memberships = yield* Scope.fork(yield* Effect.scope)

    // registered before the actors' map, so it runs after every actor has stopped
    // leaving first: the others, woken by the release, already count one node fewer. A courtesy: if
    // the database is slow or gone, the leases lapse instead, and the stop goes on
    yield* Effect.addFinalizer(() =>
      Effect.andThen(
        leases.leave,
        leases
          .release([...held.keys()])
          .pipe(
            Effect.catchCause((cause) =>
              Effect.logWarning("the channels' leases could not be handed back; they lapse instead", cause)
            )
          )
      )
    )
    const actors = yield* FiberMap.make<ChannelId>()
    // registered after the actors' map, so it runs before the actors are interrupted
    /** The process is stopping: a presence session that ends now is not opened again. */
    let stopping = false
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        stopping = true
        for (const entry of held.values()) entry.cell.stopping ??= "shutdown"
      })
    )
    const context = yield* Effect.context<
      WhatsAppTransport | ChannelLifecycle | AuthStates | ChannelMessaging
    >()
    const oneAtATime = yield* Semaphore.make(1)
    /** Past this (monotonic ms), the node's lease may have lapsed: every actor stops, even without the database. */
    let deadline = 0
    /** Past this (monotonic ms), no good check vouches for the node's presence session: every actor stops too. */
    let vouchedUntil = 0
    const vouches = Duration.toMillis(presenceVouches(leases.ttl))
    /** Whether the node may still hold its channels, by its lease and its presence. */
    const inTime = () => {
      const now = monotonicMillis()
      return now < deadline && now < vouchedUntil
    }
    /** Channels this node may own without running them (actors dropped without the database): handed back by the reconciler. */
    let unrunOwned = true
    /** The presence lock this node joined under. */
    let presenceKey: number | undefined
    /** Whether the session holding that lock is alive; while it is not, the node takes nothing and renews nothing. */
    let present = false
    /** Since when (monotonic ms) the session has been alive: a node judges the others' only once its own has lasted the grace. */
    let presentSince = 0
    const graceMillis = Duration.toMillis(leases.grace)
    /** Joins afresh: the deadline counts from before the statement is sent, so the lease lasts at least that long. */
    const join = (key: number) =>
      Effect.gen(function* () {
        const sentAt = monotonicMillis()
        yield* leases.join(key)
        deadline = sentAt + ttlMillis - margin
        unrunOwned = true
        presenceKey = key
      })
    /** When this process may start its next connect to WhatsApp (monotonic ms), across reconciles. */
    let nextConnectAt = 0

    /** Starts a channel's actor, once the channel's previous actor here has closed. */
    const start = (fence: Fence, epoch: number, after = Duration.zero) =>
      Effect.gen(function* () {
        const previous = closing.get(fence.channelId)
        if (previous !== undefined) yield* Fiber.await(previous)
        const entry: Held = {
          fence,
          epoch,
          cell: {
            stopping: null,
            holdsLease: () => held.get(fence.channelId) === entry && inTime(),
            lastPairingRound: false
          },
          retryAt: 0,
          endings: 0
        }
        held.set(fence.channelId, entry)
        yield* run(entry, after)
      })

    /** Runs (or runs again) a held channel's actor; an actor that ends on its own is started again later, with backoff. */
    const run = (entry: Held, after = Duration.zero) =>
      FiberMap.run(
        actors,
        entry.fence.channelId,
        Effect.andThen(
          // pacing is about WhatsApp, in real time whatever clock the rest runs on
          Effect.sleep(after).pipe(Effect.provideService(Clock.Clock, realClock)),
          supervise(entry.fence, entry.cell)
        ).pipe(
          Effect.provideContext(context),
          Effect.onExit((exit) =>
            Exit.isSuccess(exit)
              ? Effect.map(reconnectDelay(entry.endings++), (delay) => {
                  entry.retryAt = monotonicMillis() + Duration.toMillis(delay)
                })
              : Effect.void
          )
        )
      )

    /** Stops actors (their finalizers close the sockets, then record why) before their leases are handed back. */
    const stop = (channelIds: ReadonlyArray<ChannelId>, why: (id: ChannelId) => StopIntent) =>
      Effect.gen(function* () {
        for (const id of channelIds) {
          const entry = held.get(id)
          if (entry !== undefined) entry.cell.stopping = why(id)
        }
        yield* Effect.forEach(channelIds, (id) => FiberMap.remove(actors, id), {
          discard: true,
          concurrency: 64
        })
        for (const id of channelIds) held.delete(id)
        // not handed back (the database slow or gone): the reconciler hands back what runs nowhere
        yield* leases.release(channelIds).pipe(
          Effect.onError(() =>
            Effect.sync(() => {
              unrunOwned = true
            })
          )
        )
      })

    /** Drops actors without touching the database: their leases are, or may be, someone else's. */
    const abandon = (channelIds: ReadonlyArray<ChannelId>, why: string) =>
      Effect.gen(function* () {
        if (channelIds.length === 0) return
        for (const id of channelIds) {
          const entry = held.get(id)
          if (entry !== undefined) entry.cell.stopping = "lease_lost"
          held.delete(id)
        }
        unrunOwned = true
        yield* Effect.logWarning(`stopping channel actors: ${why}`).pipe(
          Effect.annotateLogs({ channels: channelIds.join(",") })
        )
        for (const id of channelIds) {
          const fiber = yield* Effect.forkDetach(FiberMap.remove(actors, id))
          closing.set(id, fiber)
          fiber.addObserver(() => {
            if (closing.get(id) === fiber) closing.delete(id)
          })
        }
      })

    /** No I/O: once the node's lease could lapse before it is renewed, every actor closes its socket. */
    const watchdog = Effect.suspend(() =>
      inTime()
        ? Effect.void
        : abandon([...held.keys()], "the node's lease or its presence could not be renewed in time")
    )

    /** Once every socket being closed here is closed (or a lease's life has passed). */
    const closed = Effect.suspend(() =>
      Fiber.awaitAll([...closing.values()]).pipe(Effect.timeout(leases.ttl), Effect.ignore)
    )

    /**
     * A session holding the presence lock, the node a member under it: joined afresh at first; after a
     * session ended, still holding its channels if the same lock came back and the lease renewed (not
     * cut short meanwhile), else with none. `lapsed` ends it from outside (the lease lapsed).
     */
    const becomeMember = Effect.gen(function* () {
      const scope = yield* Scope.fork(memberships)
      return yield* Effect.gen(function* () {
        const previous = presenceKey
        const openedAt = monotonicMillis()
        const presence = yield* leases.presence(previous)
        vouchedUntil = openedAt + vouches
        const sentAt = monotonicMillis()
        if (presence.key === previous && (yield* leases.renew)) {
          deadline = sentAt + ttlMillis - margin
        } else {
          // under the reconciler's permit: a claim it is making now cannot outlive the join
          yield* Semaphore.withPermits(
            oneAtATime,
            1
          )(
            Effect.gen(function* () {
              if (previous !== undefined) {
                yield* abandon([...held.keys()], "the node's database session ended")
                yield* closed
              }
              yield* join(presence.key)
            })
          )
        }
        present = true
        presentSince = monotonicMillis()
        return { scope, presence, lapsed: Deferred.makeUnsafe<void>() }
      }).pipe(
        Scope.provide(scope),
        Effect.onError(() => Scope.close(scope, Exit.void))
      )
    })
    // a database slow to answer at startup (a loaded machine) is waited for a while, not a reason to stop
    const firstMembership = yield* becomeMember.pipe(
      Effect.tapCause((cause) => Effect.logWarning("joining the channel leases failed; retrying", cause)),
      Effect.sandbox,
      Effect.retry({ schedule: Schedule.spaced(Duration.millis(tick)), times: joinAttempts - 1 }),
      Effect.catch(Effect.failCause),
      Effect.provideService(Clock.Clock, realClock)
    )
    let membership = firstMembership

    /** One statement, however many channels run here; none while the node's session is gone. */
    const heartbeat = Effect.gen(function* () {
      if (!present) return
      const current = membership
      // the deadline counts from before the renewal is sent: the lease lasts at least that long
      const sentAt = monotonicMillis()
      if (yield* leases.renew) {
        // unless the session ended meanwhile: then its end decides
        if (present) deadline = sentAt + ttlMillis - margin
      } else {
        // lapsed: every channel here may be someone else's by now; start again with none, once every
        // socket is closed (the others hand channels over as soon as this node counts again), on a
        // session of its own again
        yield* abandon([...held.keys()], "the node's lease lapsed")
        yield* closed
        yield* Deferred.succeed(current.lapsed, undefined)
      }
      yield* Metric.update(actorsHere, held.size)
    }).pipe(
      Effect.catchCause((cause) => Effect.logWarning("channel lease heartbeat failed; retrying", cause))
    )

    /** Makes what runs here match the database; says how long until a lease elsewhere expires. */
    const reconcileOnce = Effect.gen(function* () {
      // without its session the node is no member: it takes nothing until it has joined again
      if (!present) return tick
      yield* Metric.update(reconciles, 1)
      let contended = false
      const heldIds = [...held.keys()]
      const heldRows = yield* sql`
        SELECT c.id, c.desired, c.status, c.run_epoch::int AS run_epoch, c.unlink_epoch::int AS unlink_epoch,
          l.owner, l.generation::int AS generation
        FROM channels c LEFT JOIN channel_leases l ON l.channel_id = c.id
        WHERE c.id IN (SELECT jsonb_array_elements_text(${JSON.stringify(heldIds)}::jsonb))`.pipe(
        decodeRows(HeldRow)
      )
      const rowsById = new Map(heldRows.map((row) => [row.id, row]))
      // taken by another node although this one's lease is live: only by hand, but then it is theirs
      yield* abandon(
        heldIds.filter((id) => {
          const row = rowsById.get(id)
          return row?.owner !== leases.nodeId || row.generation !== held.get(id)?.fence.generation
        }),
        "their leases were taken by another node"
      )
      const shouldRun = (row: typeof HeldRow.Type | undefined) =>
        row !== undefined && row.desired === "running" && isRunning(row.status)
      yield* stop(
        heldIds.filter((id) => held.has(id) && !shouldRun(rowsById.get(id))),
        // logged out or deleted since the actor started: it unlinks the device as it stops
        (id) => ((rowsById.get(id)?.unlink_epoch ?? 0) > (held.get(id)?.epoch ?? 0) ? "unlink" : "handover")
      )
      const now = monotonicMillis()
      for (const [id, entry] of held) {
        const row = rowsById.get(id)!
        if (row.run_epoch !== entry.epoch) {
          // asked to connect or restart since the actor started: a fresh one, once the old one closed;
          // logged out meanwhile too (a logout then a connect at once): the old device is unlinked first
          entry.cell.stopping = row.unlink_epoch > entry.epoch ? "unlink" : "restart"
          yield* FiberMap.remove(actors, id)
          yield* start(entry.fence, row.run_epoch)
        } else if (!(yield* FiberMap.has(actors, id)) && now >= entry.retryAt) {
          // it ended on its own although the channel should run: again, after a backoff
          yield* run(entry)
        }
      }

      if (unrunOwned && closing.size === 0) {
        // dropped without the database while the node's lease lived on: nobody runs them, nobody may take them
        yield* leases.releaseAllBut([...held.keys()])
        unrunOwned = false
      }

      const totals = yield* sql<{ status: ChannelStatus; n: number }>`
        SELECT status, count(*)::int AS n FROM channels WHERE status <> 'deleted' GROUP BY status`
      const counted = new Map(totals.map((row) => [row.status, row.n]))
      for (const status of countedStatuses) {
        yield* Metric.update(Metric.withAttributes(channelsByStatus, { status }), counted.get(status) ?? 0)
      }

      // this process's fair share of what should run and nobody runs
      const runnableCount = yield* sql<{ n: number }>`
        SELECT count(*)::int AS n FROM channels
        WHERE desired = 'running' AND status IN ${sql.in(runningStatuses)}`
      // counted at each reconcile: a node that left or died a moment ago must not keep its share
      const liveNodes = yield* leases.liveNodes
      const fairShare = Math.ceil((runnableCount[0]?.n ?? 0) / liveNodes)
      const budget = fairShare - held.size
      if (budget > 0) {
        const candidates = yield* leases.claimable(Math.min(budget, maxClaimsPerRound), [...held.keys()])
        const claimed = yield* leases.claim(candidates)
        // another node claimed some of them first, or the share is larger than one claim: look again
        // soon rather than at the next tick
        if (claimed.length < candidates.length || budget > maxClaimsPerRound) contended = true
        const epochs = new Map(candidates.map((c) => [c.channelId, c.runEpoch]))
        // connects to WhatsApp are paced, with jitter, so a takeover or a new process is no burst
        for (const lease of claimed) {
          if (lease.takenFrom !== null) yield* Metric.update(takeovers, 1)
          const jitter = yield* Random.nextBetween(0, connectSpacingMillis)
          nextConnectAt = Math.max(nextConnectAt + connectSpacingMillis, monotonicMillis())
          yield* start(
            { channelId: lease.channelId, generation: lease.generation },
            epochs.get(lease.channelId) ?? 0,
            Duration.millis(nextConnectAt - monotonicMillis() + jitter)
          )
        }
      } else if (liveNodes > 1 && held.size > fairShare + 1) {
        // another process came up: hand it what is beyond this one's share
        yield* stop([...held.keys()].slice(fairShare), () => "handover")
      }
      yield* Metric.update(actorsHere, held.size)

      // wake when another node's lease can be taken over, without waiting for a tick
      const next = yield* leases.nextLapse
      const until =
        next === undefined ? reconcileEvery : Math.min(reconcileEvery, Duration.toMillis(next) + 50)
      return Math.max(50, contended ? Math.min(until, 100) : until)
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
    // the presence session, checked every `presenceCheckEvery` (judging the others' once it has lasted
    // the grace). When a check fails, the others may cut this node's lease short: unless the same lock
    // is back and the lease renewed within half a grace, every actor here stops
    const checkEvery = presenceCheckEvery(leases.ttl)
    const checked = Effect.suspend(() => {
      const current = membership
      const sentAt = monotonicMillis()
      return Effect.tap(current.presence.check(sentAt - presentSince >= graceMillis), () =>
        Effect.sync(() => {
          if (membership === current) vouchedUntil = Math.max(vouchedUntil, sentAt + vouches)
        })
      )
    }).pipe(Effect.andThen(Effect.sleep(checkEvery)), Effect.forever)
    let quietUntil = 0
    /** At most one warning a second while the database cannot be reached. */
    const warn = (message: string, cause: Cause.Cause<unknown>) =>
      Effect.suspend(() => {
        if (monotonicMillis() < quietUntil) return Effect.void
        quietUntil = monotonicMillis() + 1_000
        return Effect.logWarning(message, cause)
      })
    yield* Effect.forkIn(
      Effect.forever(
        Effect.gen(function* () {
          const ended = yield* Effect.exit(Effect.raceFirst(checked, Deferred.await(membership.lapsed)))
          present = false
          deadline = Math.min(deadline, monotonicMillis() + graceMillis / 2)
          yield* Scope.close(membership.scope, Exit.void)
          if (stopping) return yield* Effect.never
          if (Exit.isFailure(ended)) {
            yield* warn("the node's database session ended; opening another", ended.cause)
          }
          membership = yield* becomeMember.pipe(
            Effect.tapCause((cause) => warn("joining the channel leases failed; retrying", cause)),
            Effect.sandbox,
            Effect.retry({ schedule: Schedule.spaced(Duration.millis(Math.min(tick, 100))) })
          )
          yield* Queue.offer(wake, undefined)
        }).pipe(Effect.catchCause((cause) => warn("the node's membership failed; trying again", cause)))
      ).pipe(Effect.provideService(Clock.Clock, realClock)),
      memberships
    )
    // woken, it lets the rest of a burst of notifications arrive first: one reconcile for all of them
    const woken = Effect.andThen(
      Queue.take(wake),
      Effect.sleep(Duration.millis(burstMillis)).pipe(Effect.provideService(Clock.Clock, realClock))
    )
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.flatMap(reconcile, (millis) => Effect.raceFirst(woken, Effect.sleep(Duration.millis(millis))))
      )
    )
    yield* Effect.forkScoped(
      Effect.repeat(heartbeat, Schedule.spaced(Duration.millis(tick))).pipe(
        Effect.provideService(Clock.Clock, realClock)
      )
    )
    yield* Effect.forkScoped(
      Effect.repeat(watchdog, Schedule.spaced(Duration.millis(watchEvery))).pipe(
        Effect.provideService(Clock.Clock, realClock)
      )
    )

    return Supervisor.of({
      running: Effect.sync(() => [...held.keys()]),
      reconcile: Effect.asVoid(reconcile)
    })
  })
)
