import { makeLruMap } from "./lruMap.ts"

/** `perSecond` tokens a second, up to `burst` saved. */
export interface Rate {
  readonly perSecond: number
  readonly burst: number
}

interface Bucket {
  tokens: number
  updatedAt: number
  /** When, untouched, the bucket is full again: from then on it is the same as no bucket. */
  fullAt: number
}

// how often buckets that are full again are swept away
const sweepEveryMillis = 60_000

/**
 * Token buckets by key, at most `capacity` of them (the least recently used is forgotten first).
 * Time is passed in, in milliseconds, so callers choose the clock.
 */
export const makeRateLimiter = <K>(capacity: number) => {
  const buckets = makeLruMap<K, Bucket>(capacity)
  let sweptAt = 0

  const sweep = (now: number) => {
    if (now - sweptAt < sweepEveryMillis) return
    sweptAt = now
    for (const [key, bucket] of buckets.entries()) if (bucket.fullAt <= now) buckets.delete(key)
  }

  // a reading older than the bucket's last (a request that waited after reading the clock, or a clock
  // set back) refills nothing and takes nothing back
  const current = (key: K, rate: Rate, now: number) => {
    const bucket = buckets.get(key)
    if (bucket === undefined) return rate.burst
    return Math.min(rate.burst, bucket.tokens + (Math.max(0, now - bucket.updatedAt) / 1000) * rate.perSecond)
  }

  /** Seconds until a token is there (0 when one is), for `Retry-After`. */
  const waitSeconds = (tokens: number, rate: Rate) =>
    tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - tokens) / rate.perSecond))

  return {
    /** Takes a token; says 0 when the request may go on, else how many seconds to wait. */
    take: (key: K, rate: Rate, now: number) => {
      sweep(now)
      const tokens = current(key, rate, now)
      const left = tokens >= 1 ? tokens - 1 : tokens
      const updatedAt = Math.max(now, buckets.get(key)?.updatedAt ?? now)
      buckets.set(key, {
        tokens: left,
        updatedAt,
        fullAt: updatedAt + ((rate.burst - left) / rate.perSecond) * 1000
      })
      return waitSeconds(tokens, rate)
    },
    /** How many seconds until `key` may take a token, without taking one. */
    wait: (key: K, rate: Rate, now: number) => waitSeconds(current(key, rate, now), rate),
    get size() {
      return buckets.size
    }
  }
}
