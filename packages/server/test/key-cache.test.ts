import { describe, expect, it } from "@effect/vitest"
import { ApiKeyId, CustomerId, defaultPlan } from "@whatisup/domain"
import { Deferred, Effect, Fiber, Schema } from "effect"
import * as crypto from "node:crypto"
import { customerChanged, keyChanged, keyHashOf, newKeyPlaintext } from "../src/tenancy/credentials.ts"
import { keyCacheCapacity, type KnownKey, makeKeyCache } from "../src/tenancy/keyCache.ts"

const legitimate = keyHashOf(newKeyPlaintext())
const legitimateKey: KnownKey = {
  caller: {
    customerId: Schema.decodeSync(CustomerId)("cus_01m8ahr742skbetar1crg621tp"),
    keyId: Schema.decodeSync(ApiKeyId)("key_01m8ahr742skbetar1crg621tp"),
    channelId: null,
    customer: {
      id: Schema.decodeSync(CustomerId)("cus_01m8ahr742skbetar1crg621tp"),
      name: "Legitimate",
      status: "active",
      plan: defaultPlan,
      created_at: "2026-11-30T00:00:00.000Z"
    }
  },
  suspended: false,
  revoked: false
}

/** Another customer's key, and a second key of that customer. */
const neighbour = keyHashOf(newKeyPlaintext())
const neighbourKey: KnownKey = {
  ...legitimateKey,
  caller: {
    ...legitimateKey.caller,
    customerId: Schema.decodeSync(CustomerId)("cus_01m8ahr742skbetar1crg62222"),
    keyId: Schema.decodeSync(ApiKeyId)("key_01m8ahr742skbetar1crg62222")
  }
}
const neighbourSecond = keyHashOf(newKeyPlaintext())
const neighbourSecondKey: KnownKey = {
  ...neighbourKey,
  caller: { ...neighbourKey.caller, keyId: Schema.decodeSync(ApiKeyId)("key_01m8ahr742skbetar1crg62223") }
}

const keys: ReadonlyArray<readonly [string, KnownKey]> = [
  [legitimate, legitimateKey],
  [neighbour, neighbourKey],
  [neighbourSecond, neighbourSecondKey]
]

/** A key cache over a pretend database that holds three keys of two customers, counting the lookups that reach it per hash. */
const countingCache = (capacity?: { known: number; unknown: number }, remembered?: number) => {
  const database = {
    lookups: 0,
    byHash: new Map<string, number>(),
    of: (hash: string) => database.byHash.get(hash) ?? 0
  }
  const cache = makeKeyCache(
    (hash) =>
      Effect.sync(() => {
        database.lookups++
        const id = hash.toString("base64")
        database.byHash.set(id, database.of(id) + 1)
        return keys.find(([known]) => known === id)?.[1] ?? null
      }),
    capacity,
    remembered
  )
  return { cache, database }
}

const lookupAll = (cache: ReturnType<typeof countingCache>["cache"]) =>
  Effect.forEach(keys, ([hash]) => cache.lookup(hash))

const guess = () => crypto.randomBytes(32).toString("base64")

/** A key cache whose reads wait for `gate`, counting them; `settled` lets forked lookups reach their wait. */
const gatedCache = Effect.gen(function* () {
  const gate = yield* Deferred.make<void>()
  let reads = 0
  const cache = makeKeyCache(() =>
    Effect.andThen(
      Effect.sync(() => reads++),
      Effect.as(Deferred.await(gate), legitimateKey)
    )
  )
  return { gate, reads: () => reads, cache }
})

const settled = Effect.repeat(Effect.yieldNow, { times: 20 })

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

  it.effect(
    "concurrent lookups of a key not cached share one read, unless something was invalidated since it began",
    () =>
      Effect.gen(function* () {
        const { gate, reads, cache } = yield* gatedCache
        const together = yield* Effect.forkChild(
          Effect.forEach(Array.from({ length: 50 }), () => cache.lookup(legitimate), {
            concurrency: "unbounded"
          })
        )
        yield* settled
        expect(reads()).toBe(1)
        // an invalidation, of anything: a lookup from now on does not take the answer of a read begun before
        yield* cache.forget(keyChanged(neighbourKey!.caller.keyId))
        const after = yield* Effect.forkChild(cache.lookup(legitimate))
        yield* settled
        expect(reads()).toBe(2)
        yield* Deferred.succeed(gate, undefined)
        expect(yield* Fiber.join(together)).toEqual(Array.from({ length: 50 }, () => legitimateKey))
        expect(yield* Fiber.join(after)).toEqual(legitimateKey)
        expect(reads()).toBe(2)
      })
  )

  it.effect("a lookup waiting on another's read reads itself when that one is interrupted", () =>
    Effect.gen(function* () {
      const { gate, reads, cache } = yield* gatedCache
      const first = yield* Effect.forkChild(cache.lookup(legitimate))
      yield* settled
      const waiting = yield* Effect.forkChild(
        Effect.forEach(Array.from({ length: 10 }), () => cache.lookup(legitimate), {
          concurrency: "unbounded"
        })
      )
      yield* settled
      expect(reads()).toBe(1)
      // the first request's client went away
      yield* Fiber.interrupt(first)
      yield* settled
      expect(reads()).toBe(2)
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(waiting)).toEqual(Array.from({ length: 10 }, () => legitimateKey))
      expect(reads()).toBe(2)
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

  it.effect(
    "revoking one key reads that key alone again; the other keys, its customer's too, stay cached",
    () =>
      Effect.gen(function* () {
        const { cache, database } = countingCache()
        const unknown = guess()
        yield* lookupAll(cache)
        yield* cache.lookup(unknown)
        expect(database.lookups).toBe(4)
        yield* cache.forget(keyChanged(neighbourKey!.caller.keyId))
        expect(cache.isKnown(neighbour)).toBe(true)
        yield* lookupAll(cache)
        yield* cache.lookup(unknown)
        expect(database.lookups).toBe(5)
        expect(database.of(neighbour)).toBe(2)
        // read again once, then cached again
        yield* lookupAll(cache)
        expect(database.lookups).toBe(5)
      })
  )

  it.effect(
    "a customer suspended or its plan changed reads its keys alone again; other customers' stay cached",
    () =>
      Effect.gen(function* () {
        const { cache, database } = countingCache()
        yield* lookupAll(cache)
        yield* cache.forget(customerChanged(neighbourKey!.caller.customerId))
        yield* lookupAll(cache)
        expect([database.of(legitimate), database.of(neighbour), database.of(neighbourSecond)]).toEqual([
          1, 2, 2
        ])
        yield* lookupAll(cache)
        expect(database.lookups).toBe(5)
      })
  )

  it.effect(
    "invalidations are remembered one by one up to a bound; beyond it, what was cached before the oldest is read again, never kept stale",
    () =>
      Effect.gen(function* () {
        const { cache, database } = countingCache(undefined, 2)
        yield* cache.lookup(legitimate)
        yield* cache.forget(keyChanged(legitimateKey!.caller.keyId))
        yield* cache.lookup(neighbour)
        // two more invalidations of other keys: the one of legitimate is no longer remembered by name
        for (const id of ["key_a", "key_b"]) yield* cache.forget(keyChanged(id))
        yield* cache.lookup(legitimate)
        expect(database.of(legitimate)).toBe(2)
        // the neighbour was read after the forgotten invalidation: still served from the cache
        yield* cache.lookup(neighbour)
        expect(database.of(neighbour)).toBe(1)
      })
  )

  it.effect(
    "after everything is forgotten every key is read again, and a key that existed is still known to",
    () =>
      Effect.gen(function* () {
        const { cache, database } = countingCache()
        const unknown = guess()
        yield* cache.lookup(legitimate)
        yield* cache.lookup(unknown)
        yield* cache.forgetAll
        expect(cache.isKnown(legitimate)).toBe(true)
        expect(cache.isKnown(unknown)).toBe(false)
        yield* cache.lookup(legitimate)
        yield* cache.lookup(unknown)
        expect(database.lookups).toBe(4)
        yield* cache.lookup(legitimate)
        expect(database.lookups).toBe(4)
      })
  )

  for (const [what, invalidation] of [
    ["its key revoked", keyChanged(legitimateKey!.caller.keyId)],
    ["its customer suspended", customerChanged(legitimateKey!.caller.customerId)],
    ["everything forgotten", "all"]
  ] as const) {
    it.effect(`a lookup that raced an invalidation (${what}) is read again next time`, () =>
      Effect.gen(function* () {
        const database = { lookups: 0 }
        const cache: ReturnType<typeof makeKeyCache<never>> = makeKeyCache(() =>
          Effect.suspend(() => {
            database.lookups++
            // the key is revoked, and the cache told, while this read is in flight
            return database.lookups === 1
              ? Effect.as(
                  invalidation === "all" ? cache.forgetAll : cache.forget(invalidation),
                  legitimateKey
                )
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
  }
})
