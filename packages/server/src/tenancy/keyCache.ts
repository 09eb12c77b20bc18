import { ApiKeyId, type Caller, ChannelId } from "@whatisup/domain"
import { Cause, Clock, type Context, Deferred, Effect, PubSub, Queue, Schedule, Schema, Stream } from "effect"
import { PgClient } from "@effect/sql-pg"
import { decodeRows } from "../db/transaction.ts"
import {
  credentialsChangedChannel,
  type KeyHash,
  type CredentialsChange,
  credentialsChangeOf,
  customerChanged,
  keyChanged
} from "./credentials.ts"
import { makeLruMap } from "./lruMap.ts"
import { CustomerRow, renderCustomer } from "./rows.ts"

type CallerShape = Context.Service.Shape<typeof Caller>

/** What a key hash resolves to; `null` when no key has it (cached too, so guessing keys costs no query each). */
export type KnownKey = {
  readonly caller: CallerShape
  readonly suspended: boolean
  readonly revoked: boolean
} | null

const KeyRow = Schema.Struct({
  ...CustomerRow.fields,
  key_id: ApiKeyId,
  channel_id: Schema.NullOr(ChannelId),
  revoked: Schema.Boolean
})

const cacheTtlMillis = 60_000

/**
 * How many keys are kept: keys that exist and hashes that match none apart, so a flood of unknown
 * keys evicts only unknown ones, each side forgetting its least recently used first.
 */
export const keyCacheCapacity = { known: 50_000, unknown: 10_000 }

/** How many invalidations are remembered one by one; the oldest beyond them is folded into a cut-off for all entries. */
export const rememberedInvalidations = 10_000

/**
 * API keys by hash (`keyHashOf`), read through `load` (given the hash's bytes) and kept in memory
 * (bounded). An invalidation names one key or one customer and makes only its cached entries stale:
 * read again at their next use, yet still known to exist; `forgetAll` makes every entry stale (when
 * invalidations may have been missed).
 */
export const makeKeyCache = <E>(
  load: (hash: Buffer) => Effect.Effect<KnownKey, E>,
  capacity: typeof keyCacheCapacity = keyCacheCapacity,
  remembered = rememberedInvalidations
) => {
  type Entry = {
    readonly key: KnownKey
    readonly cachedAt: number
    /** The invalidation count when its read began: an invalidation of what it names after that makes it stale. */
    readonly readIn: number
    /** Its key and its customer; nothing for a hash that matches no key. */
    readonly names: ReadonlyArray<CredentialsChange>
  }
  const known = makeLruMap<string, Entry>(capacity.known)
  const unknown = makeLruMap<string, Entry>(capacity.unknown)
  // counts invalidations: what was read before one, even by a lookup racing it, is stale for what it names
  let count = 0
  /** The count at the last invalidation of each key or customer, the least recent first. */
  const invalidated = new Map<CredentialsChange, number>()
  /** Entries read before this count are stale whatever they name: everything was forgotten, or an invalidation no longer remembered came then. */
  let cutOff = 0

  const isFresh = (entry: Entry, now: number) =>
    now - entry.cachedAt < cacheTtlMillis &&
    entry.readIn >= cutOff &&
    entry.names.every((name) => entry.readIn >= (invalidated.get(name) ?? 0))

  /**
   * Reads under way, by hash: concurrent requests with one key whose entry is missing or stale (a hot
   * key at the end of its TTL) wait for one read instead of each sending its own.
   */
  const reading = new Map<
    string,
    { readonly readIn: number; readonly done: Deferred.Deferred<KnownKey, E> }
  >()

  const loadAndKeep = (id: string): Effect.Effect<KnownKey, E> =>
    Effect.suspend(() => {
      const readIn = count
      const done = Deferred.makeUnsafe<KnownKey, E>()
      reading.set(id, { readIn, done })
      return load(Buffer.from(id, "base64")).pipe(
        Effect.tap((key) =>
          Effect.map(Clock.currentTimeMillis, (cachedAt) => {
            const names =
              key === null ? [] : [keyChanged(key.caller.keyId), customerChanged(key.caller.customerId)]
            const entry = { key, cachedAt, readIn, names }
            if (key === null) {
              known.delete(id)
              unknown.set(id, entry)
            } else {
              unknown.delete(id)
              known.set(id, entry)
            }
          })
        ),
        // settled however it ends, an interruption included: nobody waits for ever
        Effect.onExit((exit) =>
          Effect.sync(() => {
            if (reading.get(id)?.done === done) reading.delete(id)
            Deferred.doneUnsafe(done, exit)
          })
        )
      )
    })

  /** The read under way for this hash, if it began after the last invalidation of anything; else a read of its own. */
  const joinOrLoad = (id: string): Effect.Effect<KnownKey, E> => {
    const underway = reading.get(id)
    return underway === undefined || underway.readIn !== count
      ? loadAndKeep(id)
      : Deferred.await(underway.done).pipe(
          // the request that was reading went away (its client did): read again
          Effect.catchCause((cause) =>
            Cause.hasInterruptsOnly(cause) ? joinOrLoad(id) : Effect.failCause(cause)
          )
        )
  }

  /** The fresh cached entry of this hash at `now`, if there is one (the most recently used then). */
  const cached = (hash: KeyHash, now: number): KnownKey | undefined => {
    const entry = known.get(hash) ?? unknown.get(hash)
    return entry !== undefined && isFresh(entry, now) ? entry.key : undefined
  }

  return {
    /** What the key with this hash is, from the cache when fresh there, else read. */
    lookup: (hash: KeyHash) =>
      Clock.clockWith((clock) => {
        const key = cached(hash, clock.currentTimeMillisUnsafe())
        return key === undefined ? joinOrLoad(hash) : Effect.succeed(key)
      }),
    /** As `lookup` when the entry is cached and fresh at `now`, without an effect (the path of every request); else undefined. */
    cached,
    /** Whether a key with this hash was found to exist (however long ago), without a query. */
    isKnown: (hash: KeyHash) => known.has(hash),
    /** The named key or customer is read again at its next use; every other entry stays. */
    forget: (change: CredentialsChange) =>
      Effect.sync(() => {
        invalidated.delete(change)
        invalidated.set(change, ++count)
        if (invalidated.size > remembered) {
          const [oldest, at] = invalidated.entries().next().value!
          invalidated.delete(oldest)
          cutOff = Math.max(cutOff, at)
        }
      }),
    forgetAll: Effect.sync(() => {
      cutOff = ++count
      invalidated.clear()
    })
  }
}

export type KeyCache = ReturnType<typeof makeKeyCache>

/**
 * The key cache over the database: a revoked key, or a suspended or resumed customer or a changed plan,
 * is read again at once in every process, through NOTIFY, and nothing else is. Each change is also
 * published in `changes` (undefined: anything may have changed), for what holds on to a caller longer
 * than a request. Runs its listener in the enclosing scope.
 */
export const makeDatabaseKeyCache = Effect.gen(function* () {
  const sql = yield* PgClient.PgClient
  const published = yield* PubSub.unbounded<CredentialsChange | undefined>()
  const cache = makeKeyCache((hash) =>
    sql`
      SELECT k.id AS key_id, k.channel_id, k.revoked_at IS NOT NULL AS revoked,
        c.id, c.name, c.status, c.max_channels, c.max_api_keys, c.messages_per_minute,
        c.api_requests_per_second, c.pairing_codes_per_channel_per_hour,
        c.pairing_codes_per_customer_per_day, c.max_webhook_endpoints, c.created_at
      FROM api_keys k JOIN customers c ON c.id = k.customer_id
      WHERE k.key_hash = ${hash}`.pipe(
      decodeRows(KeyRow),
      Effect.map((rows): KnownKey => {
        const row = rows[0]
        return row === undefined
          ? null
          : {
              caller: {
                customerId: row.id,
                keyId: row.key_id,
                channelId: row.channel_id,
                customer: renderCustomer(row)
              },
              suspended: row.status === "suspended",
              revoked: row.revoked
            }
      })
    )
  )

  const keys = {
    ...cache,
    forget: (change: CredentialsChange) =>
      Effect.andThen(cache.forget(change), PubSub.publish(published, change)).pipe(Effect.asVoid),
    forgetAll: Effect.andThen(cache.forgetAll, PubSub.publish(published, undefined)).pipe(Effect.asVoid),
    changes: Stream.fromPubSub(published),
    /** Whether the key still authenticates: not revoked, and its customer not suspended. */
    isActive: (keyId: ApiKeyId) =>
      sql`
        SELECT 1 FROM api_keys k JOIN customers c ON c.id = k.customer_id
        WHERE k.id = ${keyId} AND k.revoked_at IS NULL AND c.status = 'active'`.pipe(
        Effect.map((rows) => rows.length > 0),
        Effect.orDie
      )
  }

  yield* Effect.forkScoped(
    Effect.gen(function* () {
      const notifications = yield* sql.listen(credentialsChangedChannel)
      // anything that changed while not listening is forgotten once listening again
      yield* keys.forgetAll
      yield* Effect.forever(
        Effect.flatMap(Queue.take(notifications), ({ payload }) => {
          const change = credentialsChangeOf(payload)
          return change === undefined ? keys.forgetAll : keys.forget(change)
        })
      )
    }).pipe(
      Effect.scoped,
      Effect.catchCause((cause) =>
        Effect.logWarning("credential notifications lost; listening again", cause)
      ),
      Effect.repeat(Schedule.spaced("1 second"))
    )
  )

  return keys
})
