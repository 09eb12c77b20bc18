// ipaddr.js is CommonJS: under Node's ESM loader only its default export carries the functions
import ipaddr from "ipaddr.js"
import { makeRateLimiter, type Rate } from "./rateLimiter.ts"

/** Failed authentications allowed per client: 20 at once, then one every 6 seconds (10 a minute). */
export const failedAuthenticationRate: Rate = { perSecond: 1 / 6, burst: 20 }

// each remembered client costs a bucket: beyond this many, the least recently seen are forgotten
const maxClients = 50_000

/**
 * Who a failed authentication is counted against: the address, or for IPv6 its /64 (one subscriber
 * often holds a whole /64, so counting single addresses would let it rotate freely).
 */
export const clientOf = (address: string | undefined) => {
  if (address === undefined || !ipaddr.isValid(address)) return "unknown"
  const parsed = ipaddr.process(address)
  return parsed.kind() === "ipv6"
    ? `${(parsed as ipaddr.IPv6).parts
        .slice(0, 4)
        .map((part) => part.toString(16))
        .join(":")}::/64`
    : parsed.toString()
}

/** Failed authentications per client address, bounded in memory; time is passed in, in milliseconds. */
export const makeFailedAuthentications = () => {
  const limiter = makeRateLimiter<string>(maxClients)
  return {
    /** Seconds before `client` may fail again; 0 when it may. */
    blockedFor: (client: string, now: number) => limiter.wait(client, failedAuthenticationRate, now),
    record: (client: string, now: number) => void limiter.take(client, failedAuthenticationRate, now)
  }
}
