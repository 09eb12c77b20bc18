import { describe, expect, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { newKeyPlaintext } from "../src/tenancy/credentials.ts"
import { clientOf } from "../src/tenancy/failedAuthentications.ts"
import { makeRateLimiter } from "../src/tenancy/rateLimiter.ts"
import { adminOf, newCustomer } from "./support/admin.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { type Reply, request } from "./support/http.ts"

const rate = { perSecond: 2, burst: 4 }

describe("token buckets", () => {
  it("give the burst, then one token per 1/rate seconds", () => {
    const limiter = makeRateLimiter<string>(100)
    for (let i = 0; i < 4; i++) expect(limiter.take("a", rate, 0)).toBe(0)
    expect(limiter.take("a", rate, 0)).toBe(1)
    expect(limiter.wait("a", rate, 499)).toBe(1)
    expect(limiter.wait("a", rate, 500)).toBe(0)
    expect(limiter.take("a", rate, 500)).toBe(0)
    expect(limiter.take("a", rate, 500)).toBe(1)
  })

  it("take nothing back for a reading older than the last (a request that waited, a clock set back)", () => {
    const limiter = makeRateLimiter<string>(100)
    expect(limiter.take("a", rate, 10_000)).toBe(0)
    // read its time before a slow lookup: two seconds older than the bucket's last take
    expect(limiter.take("a", rate, 8_000)).toBe(0)
    expect(limiter.take("a", rate, 10_000)).toBe(0)
    expect(limiter.take("a", rate, 10_000)).toBe(0)
    // the burst is spent, and the old reading refilled nothing
    expect(limiter.take("a", rate, 9_000)).toBe(1)
    expect(limiter.take("a", rate, 10_500)).toBe(0)
  })

  it("are forgotten once idle long enough to be full again, and not before", () => {
    const limiter = makeRateLimiter<string>(100)
    for (let i = 0; i < 4; i++) limiter.take("idle", rate, 0)
    limiter.take("quiet", rate, 1_000)
    // drained just before the sweep: full again only two seconds later
    for (let i = 0; i < 4; i++) limiter.take("busy", rate, 59_500)
    expect(limiter.size).toBe(3)
    limiter.take("new", rate, 60_000)
    expect(limiter.size).toBe(2)
    // still the drained bucket, one token refilled since, not a fresh one
    expect(limiter.take("busy", rate, 60_000)).toBe(0)
    expect(limiter.take("busy", rate, 60_000)).toBe(1)
    // the next sweep, a minute later, finds them all idle
    limiter.take("newer", rate, 120_000)
    expect(limiter.size).toBe(1)
  })

  it("are at most their capacity, the least recently used forgotten first", () => {
    const limiter = makeRateLimiter<string>(1_000)
    for (let i = 0; i < 5_000; i++) limiter.take(`client ${i}`, rate, 0)
    expect(limiter.size).toBe(1_000)
  })

  it("count IPv6 clients by /64 and IPv4-mapped addresses as IPv4", () => {
    expect(clientOf("2001:db8:1:2:3:4:5:6")).toBe(clientOf("2001:db8:1:2:ffff::1"))
    expect(clientOf("2001:db8:1:2:3:4:5:6")).not.toBe(clientOf("2001:db8:1:3::1"))
    expect(clientOf("::ffff:192.0.2.7")).toBe("192.0.2.7")
    expect(clientOf(undefined)).toBe("unknown")
  })
})

const expectRefusal = (reply: Reply, code: string) => {
  expect(reply.status).toBe(429)
  expect(reply.headers.get("content-type")).toBe("application/problem+json")
  expect(reply.body.code).toBe(code)
  expect(Number(reply.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
  expect(reply.body.retry_after).toBe(Number(reply.headers.get("retry-after")))
}

layer(layerTestGateway(), { timeout: 120_000, excludeTestServices: true })(
  "limits a tenant cannot dodge",
  (it) => {
    it.effect("new keys bring no fresh burst: all the keys of a customer share its plan's rate", () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const admin = yield* adminOf(gateway)
        const { customerId } = yield* newCustomer(gateway, {
          name: "Churner",
          plan: { api_requests_per_second: rate.perSecond, max_api_keys: 30 }
        })
        const keys: Array<string> = []
        for (let i = 0; i < 20; i++) keys.push((yield* admin.IssueApiKey({ customer_id: customerId })).key)

        const started = performance.now()
        let accepted = 0
        for (const key of keys) {
          for (let i = 0; i < rate.burst; i++) {
            const reply = yield* request(gateway.api, "GET", "/v1/me", { key })
            if (reply.status === 200) accepted++
            else expectRefusal(reply, "rate_limited")
          }
        }
        const seconds = (performance.now() - started) / 1000
        // one burst and the rate over the time taken, however many keys took turns (each key alone: 80)
        expect(accepted).toBeGreaterThanOrEqual(rate.burst)
        expect(accepted).toBeLessThanOrEqual(rate.burst + Math.ceil(rate.perSecond * seconds))
      })
    )

    it.effect(
      "an address that keeps failing to authenticate gets 429 with Retry-After; other addresses and keys in use do not",
      () =>
        Effect.gen(function* () {
          const { api } = yield* TestGateway
          const { key } = yield* newCustomer(yield* TestGateway, { name: "Neighbour of a guesser" })
          const guesser = "127.0.0.3"
          expect((yield* request(api, "GET", "/v1/me", { key, from: guesser })).status).toBe(200)

          const started = performance.now()
          const failed: Array<string> = []
          let refused: Reply | undefined
          while (refused === undefined && failed.length < 100) {
            // a forwarded address is believed only from a trusted proxy: none here
            const reply = yield* request(api, "GET", "/v1/me", {
              key: newKeyPlaintext(),
              from: guesser,
              headers: { "x-forwarded-for": `198.51.100.${failed.length}` }
            })
            if (reply.status === 429) refused = reply
            else failed.push(reply.body.code)
          }
          const seconds = (performance.now() - started) / 1000
          expect(new Set(failed)).toEqual(new Set(["invalid_api_key"]))
          // twenty at once, then one every six seconds
          expect(failed.length).toBeGreaterThanOrEqual(20)
          expect(failed.length).toBeLessThanOrEqual(20 + Math.ceil(seconds / 6))
          expectRefusal(refused!, "too_many_failed_authentications")
          expectRefusal(
            yield* request(api, "GET", "/v1/me", { key: "not-even-a-key", from: guesser }),
            "too_many_failed_authentications"
          )

          const other = yield* request(api, "GET", "/v1/me", { key: newKeyPlaintext(), from: "127.0.0.4" })
          expect(other.status).toBe(401)
          expect(other.body.code).toBe("invalid_api_key")
          // a key known to exist costs no query: it keeps working from the guesser's address
          expect((yield* request(api, "GET", "/v1/me", { key, from: guesser })).status).toBe(200)
        })
    )
  }
)

layer(layerTestGateway({ WHATISUP_TRUSTED_PROXIES: "127.0.0.1/32" }), {
  timeout: 120_000,
  excludeTestServices: true
})("behind a trusted proxy", (it) => {
  it.effect("failed authentications are counted against the address the proxy forwards", () =>
    Effect.gen(function* () {
      const { api } = yield* TestGateway
      const viaProxy = (client: string) =>
        request(api, "GET", "/v1/me", {
          key: newKeyPlaintext(),
          headers: { "x-forwarded-for": `203.0.113.9, ${client}` }
        })
      let refused: Reply | undefined
      for (let i = 0; i < 100 && refused === undefined; i++) {
        const reply = yield* viaProxy("198.51.100.7")
        if (reply.status === 429) refused = reply
      }
      expectRefusal(refused!, "too_many_failed_authentications")
      expect((yield* viaProxy("198.51.100.8")).body.code).toBe("invalid_api_key")
      // the proxy's own address is not the one refused
      const direct = yield* request(api, "GET", "/v1/me", { key: newKeyPlaintext() })
      expect(direct.body.code).toBe("invalid_api_key")
    })
  )
})
