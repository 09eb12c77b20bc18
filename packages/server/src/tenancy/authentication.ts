import type { Caller } from "@whatisup/domain"
import { Context, Effect, Layer } from "effect"
import { hashKey, keyPattern } from "./credentials.ts"
import { AuthenticationFailed, RateLimitExceeded } from "./errors.ts"
import { makeKeyCache } from "./keyCache.ts"
import { makeLastUsed } from "./lastUsed.ts"
import { makeRateLimiter } from "./rateLimiter.ts"

type CallerShape = Context.Service.Shape<typeof Caller>

/**
 * Resolves bearer keys to callers (through the key cache), applies the plan's per-key request rate,
 * and notes each key's use for `last_used_at`.
 */
export class Authentication extends Context.Service<
  Authentication,
  {
    readonly authenticate: (
      token: string
    ) => Effect.Effect<CallerShape, AuthenticationFailed | RateLimitExceeded>
    /** Drops every cached key in this process (other processes hear it through NOTIFY). */
    readonly forget: Effect.Effect<void>
    readonly flushLastUsed: Effect.Effect<void>
  }
>()("whatisup/Authentication") {}

export const layerAuthentication = Layer.effect(
  Authentication,
  Effect.gen(function* () {
    const keys = yield* makeKeyCache
    const rateLimiter = makeRateLimiter()
    const lastUsed = yield* makeLastUsed

    // untraced: it runs on every request
    const authenticate = Effect.fnUntraced(function* (token: string) {
      if (token === "") return yield* new AuthenticationFailed({ reason: "missing" })
      if (!keyPattern.test(token)) return yield* new AuthenticationFailed({ reason: "malformed" })
      const key = yield* keys.lookup(hashKey(token))
      if (key === null || key.revoked)
        return yield* new AuthenticationFailed({ reason: "unknown_or_revoked" })
      if (key.suspended) return yield* new AuthenticationFailed({ reason: "suspended" })
      const rate = key.caller.plan.api_requests_per_second
      const retryAfterSeconds = rateLimiter.take(key.caller.keyId, rate)
      if (retryAfterSeconds > 0) {
        return yield* new RateLimitExceeded({ requestsPerSecond: rate, retryAfterSeconds })
      }
      lastUsed.touch(key.caller.keyId)
      return key.caller
    })

    return Authentication.of({ authenticate, forget: keys.forget, flushLastUsed: lastUsed.flush })
  })
)
