import type { ApiKeyId, Caller } from "@whatisup/domain"
import { Clock, Context, Effect, Layer, type Stream } from "effect"
import { type CredentialsChange, keyHashOf, keyPattern } from "./credentials.ts"
import { AuthenticationFailed, FailedAuthenticationLimitExceeded, RateLimitExceeded } from "./errors.ts"
import { clientOf, makeFailedAuthentications } from "./failedAuthentications.ts"
import { type KnownKey, makeDatabaseKeyCache } from "./keyCache.ts"
import { makeLastUsed } from "./lastUsed.ts"
import { makeRateLimiter } from "./rateLimiter.ts"

type CallerShape = Context.Service.Shape<typeof Caller>

// one bucket per customer that made a request lately; idle ones are swept away
const maxCustomerBuckets = 100_000

/**
 * Resolves bearer keys to callers (through the key cache), applies the plan's request rate to the
 * customer (all its keys together, so new keys bring no fresh burst), limits failed authentications
 * per client address, and notes each key's use for `last_used_at`.
 */
export class Authentication extends Context.Service<
  Authentication,
  {
    readonly authenticate: (
      token: string,
      /** The client's IP address, when known. */
      address: string | undefined
    ) => Effect.Effect<
      CallerShape,
      AuthenticationFailed | RateLimitExceeded | FailedAuthenticationLimitExceeded
    >
    /**
     * Has the cached entries of one key or one customer read again at their next use in this process
     * (others hear it through NOTIFY); the other keys stay cached.
     */
    readonly forget: (change: CredentialsChange) => Effect.Effect<void>
    /**
     * Every key or customer whose credentials changed from now on, heard from any process (undefined:
     * anything may have changed), for what keeps a caller longer than one request.
     */
    readonly changes: Stream.Stream<CredentialsChange | undefined>
    /** Whether the key still authenticates (not revoked, its customer not suspended), read from the database. */
    readonly isActive: (keyId: ApiKeyId) => Effect.Effect<boolean>
    readonly flushLastUsed: Effect.Effect<void>
  }
>()("whatisup/Authentication") {}

export const layerAuthentication = Layer.effect(
  Authentication,
  Effect.gen(function* () {
    const keys = yield* makeDatabaseKeyCache
    const customerRates = makeRateLimiter<CallerShape["customerId"]>(maxCustomerBuckets)
    const failures = makeFailedAuthentications()
    const lastUsed = yield* makeLastUsed

    /** The request goes on as `key`'s caller, or is refused: at the time of its turn (`now`, after a lookup that may have waited on the database). */
    const admit = (
      key: KnownKey,
      address: string | undefined,
      failedAt: number,
      now: number
    ): Effect.Effect<CallerShape, AuthenticationFailed | RateLimitExceeded> => {
      if (key === null || key.revoked) return Effect.fail(failed("unknown_or_revoked", address, failedAt))
      if (key.suspended) return Effect.fail(new AuthenticationFailed({ reason: "suspended" }))
      const perSecond = key.caller.customer.plan.api_requests_per_second
      const retryAfterSeconds = customerRates.take(
        key.caller.customerId,
        { perSecond, burst: perSecond * 2 },
        now
      )
      if (retryAfterSeconds > 0) {
        return Effect.fail(new RateLimitExceeded({ requestsPerSecond: perSecond, retryAfterSeconds }))
      }
      lastUsed.touch(key.caller.keyId)
      return Effect.succeed(key.caller)
    }

    const failed = (reason: "malformed" | "unknown_or_revoked", address: string | undefined, now: number) => {
      failures.record(clientOf(address), now)
      return new AuthenticationFailed({ reason })
    }

    // on every request: plain steps, one effect when the key is cached
    const authenticate = (
      token: string,
      address: string | undefined
    ): Effect.Effect<
      CallerShape,
      AuthenticationFailed | RateLimitExceeded | FailedAuthenticationLimitExceeded
    > =>
      Clock.clockWith(
        (
          clock
        ): Effect.Effect<
          CallerShape,
          AuthenticationFailed | RateLimitExceeded | FailedAuthenticationLimitExceeded
        > => {
          if (token === "") return Effect.fail(new AuthenticationFailed({ reason: "missing" }))
          const now = clock.currentTimeMillisUnsafe()
          const hash = keyPattern.test(token) ? keyHashOf(token) : undefined
          // a client that failed too often is refused, except with keys known to exist (they cost no query)
          if (hash === undefined || !keys.isKnown(hash)) {
            const blockedFor = failures.blockedFor(clientOf(address), now)
            if (blockedFor > 0) {
              return Effect.fail(new FailedAuthenticationLimitExceeded({ retryAfterSeconds: blockedFor }))
            }
          }
          if (hash === undefined) return Effect.fail(failed("malformed", address, now))
          const cached = keys.cached(hash, now)
          return cached !== undefined
            ? admit(cached, address, now, now)
            : Effect.flatMap(keys.lookup(hash), (key) =>
                Clock.clockWith((later) => admit(key, address, now, later.currentTimeMillisUnsafe()))
              )
        }
      )

    return Authentication.of({
      authenticate,
      forget: keys.forget,
      changes: keys.changes,
      isActive: keys.isActive,
      flushLastUsed: lastUsed.flush
    })
  })
)
