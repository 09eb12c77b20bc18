import type { ApiKeyId } from "@whatisup/domain"

interface Bucket {
  tokens: number
  updatedAt: number
}

/** A token bucket per API key: `rate` requests a second, bursts of twice that. */
export const makeRateLimiter = () => {
  const buckets = new Map<ApiKeyId, Bucket>()
  return {
    /** Takes a token; says 0 when the request may go on, else how many seconds to wait. */
    take: (keyId: ApiKeyId, rate: number) => {
      const now = Date.now()
      const burst = rate * 2
      const bucket = buckets.get(keyId) ?? { tokens: burst, updatedAt: now }
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * rate)
      bucket.updatedAt = now
      buckets.set(keyId, bucket)
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1
        return 0
      }
      return Math.max(1, Math.ceil((1 - bucket.tokens) / rate))
    }
  }
}
