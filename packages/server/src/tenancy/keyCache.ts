import { ApiKeyId, type Caller, ChannelId } from "@whatisup/domain"
import { Clock, type Context, Effect, Queue, Schedule, Schema } from "effect"
import { PgClient } from "@effect/sql-pg"
import { decodeRows } from "../db/transaction.ts"
import { credentialsChangedChannel } from "./credentials.ts"
import { makeLruMap } from "./lruMap.ts"
import { CustomerRow, planOf } from "./rows.ts"

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

/**
 * API keys by hash, read through `load` and kept in memory (bounded). `forget`, which every
 * invalidation calls, makes each cached key stale: read again at its next use, yet still known to exist.
 */
export const makeKeyCache = <E>(
  load: (hash: Buffer) => Effect.Effect<KnownKey, E>,
  capacity: typeof keyCacheCapacity = keyCacheCapacity
) => {
  type Entry = { readonly key: KnownKey; readonly cachedAt: number; readonly generation: number }
  const known = makeLruMap<string, Entry>(capacity.known)
  const unknown = makeLruMap<string, Entry>(capacity.unknown)
  // bumped by every invalidation: what was read before it, even by a lookup racing it, is stale
  let generation = 0

  const loadAndKeep = (id: string, hash: Buffer) =>
    Effect.gen(function* () {
      const readIn = generation
      const entry = { key: yield* load(hash), cachedAt: yield* Clock.currentTimeMillis, generation: readIn }
      if (entry.key === null) {
        known.delete(id)
        unknown.set(id, entry)
      } else {
        unknown.delete(id)
        known.set(id, entry)
      }
      return entry.key
    })

  return {
    lookup: (hash: Buffer) =>
      Effect.gen(function* () {
        const id = hash.toString("base64")
        const cached = known.get(id) ?? unknown.get(id)
        const now = yield* Clock.currentTimeMillis
        return cached !== undefined &&
          cached.generation === generation &&
          now - cached.cachedAt < cacheTtlMillis
          ? cached.key
          : yield* loadAndKeep(id, hash)
      }),
    /** Whether a key with this hash was found to exist (however long ago), without a query. */
    isKnown: (hash: Buffer) => known.has(hash.toString("base64")),
    forget: Effect.sync(() => void generation++)
  }
}

export type KeyCache = ReturnType<typeof makeKeyCache>

/**
 * The key cache over the database, dropped at once on revoke, suspend or plan change, in every
 * process, through NOTIFY. Runs its listener in the enclosing scope.
 */
export const makeDatabaseKeyCache = Effect.gen(function* () {
  const sql = yield* PgClient.PgClient
  const keys = makeKeyCache((hash) =>
    sql`
      SELECT k.id AS key_id, k.channel_id, k.revoked_at IS NOT NULL AS revoked,
        c.id, c.name, c.status, c.max_channels, c.max_api_keys, c.messages_per_minute,
        c.api_requests_per_second, c.pairing_codes_per_channel_per_hour,
        c.pairing_codes_per_customer_per_day, c.created_at
      FROM api_keys k JOIN customers c ON c.id = k.customer_id
      WHERE k.key_hash = ${hash}`.pipe(
      decodeRows(KeyRow),
      Effect.map((rows): KnownKey => {
        const row = rows[0]
        return row === undefined
          ? null
          : {
              caller: { customerId: row.id, keyId: row.key_id, channelId: row.channel_id, plan: planOf(row) },
              suspended: row.status === "suspended",
              revoked: row.revoked
            }
      })
    )
  )

  yield* Effect.forkScoped(
    Effect.gen(function* () {
      const notifications = yield* sql.listen(credentialsChangedChannel)
      // anything that changed while not listening is forgotten once listening again
      yield* keys.forget
      yield* Effect.forever(Effect.andThen(Queue.take(notifications), keys.forget))
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
