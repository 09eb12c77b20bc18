import { PgClient } from "@effect/sql-pg"
import {
  type ApiKeyId,
  type CustomerId,
  type Event,
  eventStreamKeepAliveSeconds,
  eventStreamRetryMillis,
  maxEventStreamsPerKey
} from "@whatisup/domain"
import {
  Clock,
  Context,
  Data,
  Duration,
  Effect,
  Fiber,
  Latch,
  Layer,
  Option,
  Queue,
  Schedule,
  Scope,
  Stream
} from "effect"
import { customerChanged, keyChanged } from "../tenancy/credentials.ts"
import { Authentication } from "../tenancy/authentication.ts"
import { type Feed, type LastEventIdRefused, makeEventFeed, type Position } from "./eventFeed.ts"
import { eventsAppendedChannel } from "./eventLog.ts"

/** How long a stream waits for a notification before it reads anyway, should one be lost. */
const pollMillis = 5_000
/** The first look again at events held behind an older transaction; doubled each time, up to `pollMillis`. */
const firstRecheckMillis = 50
const keepAliveMillis = eventStreamKeepAliveSeconds * 1000
/** Events read per query; a stream behind reads again at once. */
const batchSize = 100
/** How long a stream that should end may take to finish the frame it is writing before its connection is cut. */
const endGraceMillis = 5_000

/** An API key holds `max` streams open in this process already. */
export class EventStreamLimitReached extends Data.TaggedError("EventStreamLimitReached")<{
  readonly max: number
  readonly retryAfterSeconds: number
}> {}

/** One open stream, as the notifications that concern it find it. */
interface Listener {
  readonly customerId: CustomerId
  readonly keyId: ApiKeyId
  /** The request's fiber, which writes the stream: interrupted, it cuts the connection. */
  readonly fiber: Fiber.Fiber<unknown, unknown>
  /** Opened by whatever should make the stream look: a notification, a credentials change, the end. */
  readonly latch: Latch.Latch
  /** Its key or customer changed: whether the key still authenticates is read before going on. */
  recheck: boolean
  ended: boolean
}

interface StreamState {
  readonly position: Position
  /** When the stream last wrote (an event or a comment), for the keep-alive. */
  readonly wroteAt: number
  /** Whether the last read found everything there was to read. */
  readonly caughtUp: boolean
  /** Milliseconds to the next look at events held behind an older transaction; 0 when none are. */
  readonly recheckMillis: number
}

const frameOf = (event: Event) => `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`
const keepAlive = ": keep-alive\n\n"
const retryHint = `retry: ${eventStreamRetryMillis}\n\n`

export interface StreamRequest {
  readonly customerId: CustomerId
  readonly keyId: ApiKeyId
  readonly feed: Feed
  /** The `Last-Event-ID` header: where to resume; none starts with what happens from now on. */
  readonly lastEventId: string | undefined
}

/**
 * Live events for `GET /v1/events/stream`. One LISTEN per process hears every committed event's
 * customer; each of that customer's streams then reads what follows its own position (a slow poll
 * covers a lost notification, and a quicker one events held behind an older transaction). Each
 * stream holds a slot of its key's, ends when its key stops authenticating, and all end when the
 * gateway stops.
 */
export class EventStreams extends Context.Service<
  EventStreams,
  {
    /**
     * The stream's bytes, from `retry:` on; its slot and its listener are held until the scope (the
     * request's) closes.
     */
    readonly open: (
      request: StreamRequest
    ) => Effect.Effect<Stream.Stream<Uint8Array>, LastEventIdRefused | EventStreamLimitReached, Scope.Scope>
    /** Ends every stream of this process, each after the frame it is writing. */
    readonly endAll: Effect.Effect<void>
  }
>()("whatisup/EventStreams") {}

export const layerEventStreams = Layer.effect(
  EventStreams,
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const authentication = yield* Authentication
    const scope = yield* Scope.Scope
    const feed = makeEventFeed(sql, batchSize)
    const listeners = new Set<Listener>()
    const byCustomer = new Map<string, Set<Listener>>()
    const byKey = new Map<string, Set<Listener>>()
    let ending = false

    const wake = (found: Iterable<Listener> | undefined, recheck = false) => {
      for (const listener of found ?? []) {
        if (recheck) listener.recheck = true
        listener.latch.openUnsafe()
      }
    }

    /**
     * A stream blocked writing to a client that does not read never looks at its flags again: past
     * the grace, one that should have ended (or whose key no longer authenticates) is interrupted.
     */
    const cutIfStuck = (found: Iterable<Listener>) =>
      Effect.forEach(
        [...found],
        (listener) =>
          Effect.gen(function* () {
            yield* Effect.sleep(endGraceMillis)
            if (!listeners.has(listener)) return
            if (listener.ended || (listener.recheck && !(yield* authentication.isActive(listener.keyId)))) {
              yield* Effect.logInfo("an event stream is cut: its client does not read")
              yield* Fiber.interrupt(listener.fiber)
            }
          }).pipe(Effect.forkIn(scope)),
        { discard: true }
      )

    const endAll = Effect.gen(function* () {
      ending = true
      for (const listener of listeners) listener.ended = true
      wake(listeners)
      yield* cutIfStuck(listeners)
    })

    yield* Effect.forkScoped(
      Effect.gen(function* () {
        const notifications = yield* sql.listen(eventsAppendedChannel)
        // what committed while nobody listened
        wake(listeners)
        yield* Effect.forever(
          Effect.map(Queue.take(notifications), ({ payload }) => wake(byCustomer.get(payload)))
        )
      }).pipe(
        Effect.scoped,
        Effect.catchCause((cause) => Effect.logWarning("event notifications lost; listening again", cause)),
        Effect.repeat(Schedule.spaced("1 second"))
      )
    )
    yield* Effect.forkScoped(
      Stream.runForEach(authentication.changes, (change) => {
        const concerned =
          change === undefined
            ? [...listeners]
            : [...listeners].filter(
                (listener) =>
                  change === keyChanged(listener.keyId) || change === customerChanged(listener.customerId)
              )
        wake(concerned, true)
        return cutIfStuck(concerned)
      })
    )
    yield* Effect.addFinalizer(() => endAll)

    const indexed = (index: Map<string, Set<Listener>>, id: string) => {
      let found = index.get(id)
      if (found === undefined) {
        found = new Set()
        index.set(id, found)
      }
      return found
    }
    const unindexed = (index: Map<string, Set<Listener>>, id: string, listener: Listener) => {
      const found = index.get(id)
      found?.delete(listener)
      if (found?.size === 0) index.delete(id)
    }

    const register = (request: StreamRequest) =>
      Effect.withFiber((fiber) => {
        const ofKey = indexed(byKey, request.keyId)
        if (ofKey.size >= maxEventStreamsPerKey) {
          return Effect.fail(
            new EventStreamLimitReached({
              max: maxEventStreamsPerKey,
              retryAfterSeconds: eventStreamRetryMillis / 1000
            })
          )
        }
        const listener: Listener = {
          customerId: request.customerId,
          keyId: request.keyId,
          fiber,
          latch: Latch.makeUnsafe(false),
          recheck: false,
          ended: ending
        }
        listeners.add(listener)
        ofKey.add(listener)
        indexed(byCustomer, request.customerId).add(listener)
        return Effect.succeed(listener)
      })

    const unregister = (listener: Listener) =>
      Effect.sync(() => {
        listeners.delete(listener)
        unindexed(byKey, listener.keyId, listener)
        unindexed(byCustomer, listener.customerId, listener)
      })

    /** One step of a stream: wait for a reason to look (unless behind), then read what follows its position. */
    const step = (listener: Listener, which: Feed) => (state: StreamState) =>
      Effect.gen(function* () {
        const stop = [[], Option.none<StreamState>()] as const
        if (state.caughtUp) {
          const untilKeepAlive = state.wroteAt + keepAliveMillis - (yield* Clock.currentTimeMillis)
          const wait = Math.min(state.recheckMillis > 0 ? state.recheckMillis : pollMillis, untilKeepAlive)
          yield* Effect.timeoutOption(listener.latch.await, Duration.millis(Math.max(0, wait)))
        }
        // closed before the flags are read: whatever happens from here opens it again
        listener.latch.closeUnsafe()
        if (listener.ended) return stop
        if (listener.recheck) {
          listener.recheck = false
          if (!(yield* authentication.isActive(listener.keyId))) return stop
        }
        const batch = yield* feed.next(which, state.position)
        const now = yield* Clock.currentTimeMillis
        const text = batch.events.map(frameOf).join("")
        const written = text !== "" ? text : now - state.wroteAt >= keepAliveMillis ? keepAlive : ""
        const next: StreamState = {
          position: batch.position,
          wroteAt: written === "" ? state.wroteAt : now,
          caughtUp: !batch.full,
          recheckMillis: batch.waiting
            ? Math.min(state.recheckMillis > 0 ? state.recheckMillis * 2 : firstRecheckMillis, pollMillis)
            : 0
        }
        return [written === "" ? [] : [written], Option.some(next)] as const
      }).pipe(
        // a database that fails ends the stream cleanly: the client resumes with Last-Event-ID
        Effect.catchCause((cause) =>
          Effect.as(Effect.logWarning("an event stream ends: reading failed", cause), [
            [],
            Option.none<StreamState>()
          ] as const)
        )
      )

    return EventStreams.of({
      endAll,
      open: Effect.fn("EventStreams.open")(function* (request: StreamRequest) {
        const position =
          request.lastEventId === undefined
            ? yield* feed.now(request.feed)
            : yield* feed.after(request.feed, request.lastEventId)
        const listener = yield* Effect.acquireRelease(register(request), unregister)
        const opened = yield* Clock.currentTimeMillis
        const initial: StreamState = { position, wroteAt: opened, caughtUp: false, recheckMillis: 0 }
        return Stream.concat(
          Stream.make(retryHint),
          Stream.paginate(initial, step(listener, request.feed))
        ).pipe(Stream.encodeText)
      })
    })
  })
)
