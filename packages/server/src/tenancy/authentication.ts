import { Caller, RateLimited, Unauthorized } from "@whatisup/domain"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Queue, Schedule } from "effect"
import { type CustomerRow, planOf } from "./rows.ts"
import { credentialsChangedChannel, hashKey, keyPattern } from "./credentials.ts"

type CallerShape = Context.Service.Shape<typeof Caller>

interface CachedKey {
  /** `null`: no key has this hash (cached too, so guessing keys costs no query each). */
  readonly found: {
    readonly caller: CallerShape
    readonly suspended: boolean
    readonly revoked: boolean
  } | null
  readonly cachedAt: number
}

interface Bucket {
  tokens: number
  updatedAt: number
}

const cacheTtlMillis = 60_000
const maxCachedKeys = 50_000
const lastUsedFlushInterval = "5 seconds"

/**
 * Resolves bearer keys to callers through an in-memory cache (dropped at once on revoke or suspend,
 * in every process, through NOTIFY), applies the plan's per-key request rate, and records
 * `last_used_at` in batches rather than with a write per request.
 */
export class Authentication extends Context.Service<
  Authentication,
  {
    readonly authenticate: (token: string) => Effect.Effect<CallerShape, Unauthorized | RateLimited>
    readonly forget: Effect.Effect<void>
    readonly flushLastUsed: Effect.Effect<void>
  }
>()("whatisup/Authentication") {}

export const layerAuthentication = Layer.effect(
  Authentication,
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const cache = new Map<string, CachedKey>()
    // bumped by every invalidation, so a lookup that raced one never caches what it read before it
    let generation = 0
    const buckets = new Map<string, Bucket>()
    let lastUsed = new Map<string, number>()

    const load = (hash: Buffer) =>
      Effect.gen(function* () {
        const startedAt = generation
        const rows = yield* sql<
          CustomerRow & { key_id: string; channel_id: string | null; revoked: boolean }
        >`
          SELECT k.id AS key_id, k.channel_id, k.revoked_at IS NOT NULL AS revoked, c.*
          FROM api_keys k JOIN customers c ON c.id = k.customer_id
          WHERE k.key_hash = ${hash}`.pipe(Effect.orDie)
        const row = rows[0]
        const entry: CachedKey = {
          found:
            row === undefined
              ? null
              : {
                  caller: {
                    customerId: row.id as CallerShape["customerId"],
                    keyId: row.key_id as CallerShape["keyId"],
                    channelId: row.channel_id as CallerShape["channelId"],
                    plan: planOf(row)
                  },
                  suspended: row.status === "suspended",
                  revoked: row.revoked
                },
          cachedAt: Date.now()
        }
        if (startedAt === generation) {
          if (cache.size >= maxCachedKeys) cache.clear()
          cache.set(hash.toString("base64"), entry)
        }
        return entry
      })

    const takeToken = (caller: CallerShape) => {
      const now = Date.now()
      const rate = caller.plan.api_requests_per_second
      const burst = rate * 2
      const bucket = buckets.get(caller.keyId) ?? { tokens: burst, updatedAt: now }
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * rate)
      bucket.updatedAt = now
      buckets.set(caller.keyId, bucket)
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1
        return 0
      }
      return Math.max(1, Math.ceil((1 - bucket.tokens) / rate))
    }

    const authenticate = (token: string) =>
      Effect.gen(function* () {
        if (token === "") {
          return yield* new Unauthorized({
            code: "missing_api_key",
            detail: "Send Authorization: Bearer wiu_..."
          })
        }
        if (!keyPattern.test(token)) {
          return yield* new Unauthorized({
            code: "malformed_api_key",
            detail: "API keys look like wiu_ followed by 43 characters"
          })
        }
        const hash = hashKey(token)
        const cached = cache.get(hash.toString("base64"))
        const entry =
          cached !== undefined && Date.now() - cached.cachedAt < cacheTtlMillis ? cached : yield* load(hash)
        const key = entry.found
        if (key === null || key.revoked) {
          return yield* new Unauthorized({
            code: "invalid_api_key",
            detail: "The API key is unknown or revoked"
          })
        }
        if (key.suspended) {
          return yield* new Unauthorized({
            code: "customer_suspended",
            detail: "The customer account is suspended"
          })
        }
        const retryAfter = takeToken(key.caller)
        if (retryAfter > 0) {
          return yield* new RateLimited({
            detail: `This key may make ${key.caller.plan.api_requests_per_second} requests per second`,
            retry_after: retryAfter
          })
        }
        lastUsed.set(key.caller.keyId, Date.now())
        return key.caller
      })

    const flushLastUsed = Effect.suspend(() => {
      if (lastUsed.size === 0) return Effect.void
      const batch = lastUsed
      lastUsed = new Map()
      const rows = [...batch].map(([id, at]) => ({ id, at: new Date(at).toISOString() }))
      return sql`
        UPDATE api_keys k SET last_used_at = v.at
        FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS v(id text, at timestamptz)
        WHERE k.id = v.id AND (k.last_used_at IS NULL OR k.last_used_at < v.at)`.pipe(
        Effect.asVoid,
        Effect.catchCause((cause) =>
          Effect.andThen(
            // keep the batch for the next flush; newer uses win
            Effect.sync(() => {
              for (const [id, at] of batch) if ((lastUsed.get(id) ?? 0) < at) lastUsed.set(id, at)
            }),
            Effect.logWarning("could not record last_used_at; will retry", cause)
          )
        )
      )
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
    yield* Effect.forkScoped(Effect.repeat(flushLastUsed, Schedule.spaced(lastUsedFlushInterval)))
    yield* Effect.addFinalizer(() => flushLastUsed)

    return Authentication.of({ authenticate, forget, flushLastUsed })
  })
)
