import { describe, expect, it } from "@effect/vitest"
import { ApiKeyId, CustomerId, defaultPlan } from "@whatisup/domain"
import { Effect, Schema } from "effect"
import * as crypto from "node:crypto"
import { hashKey, newKeyPlaintext } from "../src/tenancy/credentials.ts"
import { keyCacheCapacity, type KnownKey, makeKeyCache } from "../src/tenancy/keyCache.ts"

const legitimate = hashKey(newKeyPlaintext())
const legitimateKey: KnownKey = {
  caller: {
    customerId: Schema.decodeSync(CustomerId)("cus_01m8ahr742skbetar1crg621tp"),
    keyId: Schema.decodeSync(ApiKeyId)("key_01m8ahr742skbetar1crg621tp"),
    channelId: null,
    plan: defaultPlan
  },
  suspended: false,
  revoked: false
}

/** A key cache over a pretend database that holds one key, counting the lookups that reach it. */
const countingCache = (capacity?: { known: number; unknown: number }) => {
  const database = { lookups: 0 }
  const cache = makeKeyCache(
    (hash) =>
      Effect.sync(() => {
        database.lookups++
        return hash.equals(legitimate) ? legitimateKey : null
      }),
    capacity
  )
  return { cache, database }
}

const guess = () => crypto.randomBytes(32)

describe("the API key cache", () => {
  it.effect("after more unknown keys than the whole cache holds, a key in use is still served from it", () =>
    Effect.gen(function* () {
      const { cache, database } = countingCache()
      const flood = keyCacheCapacity.known + keyCacheCapacity.unknown + 1
      expect(flood).toBeGreaterThan(50_000)
      expect(yield* cache.lookup(legitimate)).toEqual(legitimateKey)
      for (let i = 0; i < flood; i++) {
        if ((yield* cache.lookup(guess())) !== null) expect.unreachable("a guess matched a key")
      }
      expect(database.lookups).toBe(1 + flood)
      expect(yield* cache.lookup(legitimate)).toEqual(legitimateKey)
      expect(database.lookups).toBe(1 + flood)
      expect(cache.isKnown(legitimate)).toBe(true)
    })
  )

  it.effect("unknown keys are remembered too, the least recently used forgotten first", () =>
    Effect.gen(function* () {
      const { cache, database } = countingCache({ known: 10, unknown: 3 })
      const [a, b, c, d] = [guess(), guess(), guess(), guess()]
      for (const hash of [a, b, c, a]) yield* cache.lookup(hash)
      // a was used again: a repeated guess costs no query
      expect(database.lookups).toBe(3)
      yield* cache.lookup(d)
      // b, the least recently used, made room for d
      yield* cache.lookup(a)
      yield* cache.lookup(c)
      expect(database.lookups).toBe(4)
      yield* cache.lookup(b)
      expect(database.lookups).toBe(5)
      expect(cache.isKnown(a)).toBe(false)
    })
  )

  it.effect("after an invalidation every key is read again, and a key that existed is still known to", () =>
    Effect.gen(function* () {
      const { cache, database } = countingCache()
      const unknown = guess()
      yield* cache.lookup(legitimate)
      yield* cache.lookup(unknown)
      yield* cache.forget
      expect(cache.isKnown(legitimate)).toBe(true)
      expect(cache.isKnown(unknown)).toBe(false)
      yield* cache.lookup(legitimate)
      yield* cache.lookup(unknown)
      expect(database.lookups).toBe(4)
      yield* cache.lookup(legitimate)
      expect(database.lookups).toBe(4)
    })
  )

  it.effect("a lookup that raced an invalidation is read again next time", () =>
    Effect.gen(function* () {
      const database = { lookups: 0 }
      const cache: ReturnType<typeof makeKeyCache<never>> = makeKeyCache(() =>
        Effect.suspend(() => {
          database.lookups++
          // the key is revoked, and the cache told, while this read is in flight
          return database.lookups === 1
            ? Effect.as(cache.forget, legitimateKey)
            : Effect.succeed(legitimateKey)
        })
      )
      yield* cache.lookup(legitimate)
      yield* cache.lookup(legitimate)
      expect(database.lookups).toBe(2)
      yield* cache.lookup(legitimate)
      expect(database.lookups).toBe(2)
    })
  )
})
