import { ApiKeyId, type Caller, ChannelId } from "@whatisup/domain"
import { type Context, Effect, Queue, Schedule, Schema } from "effect"
import { PgClient } from "@effect/sql-pg"
import { decodeRows } from "../db/transaction.ts"
import { credentialsChangedChannel } from "./credentials.ts"
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
const maxCachedKeys = 50_000

/**
 * API keys by hash, cached in memory and dropped at once on revoke, suspend or plan change, in every
 * process, through NOTIFY. Runs its listener in the enclosing scope.
 */
export const makeKeyCache = Effect.gen(function* () {
  const sql = yield* PgClient.PgClient
  const cache = new Map<string, { readonly key: KnownKey; readonly cachedAt: number }>()
  // bumped by every invalidation, so a lookup that raced one never caches what it read before it
  let generation = 0

  const load = (hash: Buffer) =>
    Effect.gen(function* () {
      const startedAt = generation
      const rows = yield* sql`
        SELECT k.id AS key_id, k.channel_id, k.revoked_at IS NOT NULL AS revoked,
          c.id, c.name, c.status, c.max_channels, c.max_api_keys, c.messages_per_minute,
          c.api_requests_per_second, c.pairing_codes_per_channel_per_hour,
          c.pairing_codes_per_customer_per_day, c.created_at
        FROM api_keys k JOIN customers c ON c.id = k.customer_id
        WHERE k.key_hash = ${hash}`.pipe(decodeRows(KeyRow))
      const row = rows[0]
      const key: KnownKey =
        row === undefined
          ? null
          : {
              caller: { customerId: row.id, keyId: row.key_id, channelId: row.channel_id, plan: planOf(row) },
              suspended: row.status === "suspended",
              revoked: row.revoked
            }
      if (startedAt === generation) {
        if (cache.size >= maxCachedKeys) cache.clear()
        cache.set(hash.toString("base64"), { key, cachedAt: Date.now() })
      }
      return key
    })

  const forget = Effect.sync(() => {
    generation++
    cache.clear()
  })

  yield* Effect.forkScoped(
    Effect.gen(function* () {
      const notifications = yield* sql.listen(credentialsChangedChannel)
      // anything that changed while not listening is forgotten once listening again
      yield* forget
      yield* Effect.forever(Effect.andThen(Queue.take(notifications), forget))
    }).pipe(
      Effect.scoped,
      Effect.catchCause((cause) =>
        Effect.logWarning("credential notifications lost; listening again", cause)
      ),
      Effect.repeat(Schedule.spaced("1 second"))
    )
  )

  return {
    lookup: (hash: Buffer) =>
      Effect.suspend(() => {
        const cached = cache.get(hash.toString("base64"))
        return cached !== undefined && Date.now() - cached.cachedAt < cacheTtlMillis
          ? Effect.succeed(cached.key)
          : load(hash)
      }),
    forget
  }
})
