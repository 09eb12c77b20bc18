import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { sqlFor } from "./support/database.ts"
import { adminOf, newCustomer } from "./support/admin.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { type Reply, request } from "./support/http.ts"
import { waitFor } from "./support/waits.ts"

const layerUnderTest = layerTestGateway()

layer(layerUnderTest, { timeout: 120_000, excludeTestServices: true })("API keys", (it) => {
  it.effect(
    "a new key is answered once with its plaintext, and lists show only its prefix and last four",
    () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const { apiKey: api_key } = yield* newCustomer(yield* TestGateway, { name: "Keys Ltd" })
        const created = yield* request(api, "POST", "/v1/api-keys", {
          key: api_key.key,
          body: { name: "ci" }
        })
        expect(created.status).toBe(201)
        expect(created.body.key).toMatch(/^wiu_[A-Za-z0-9_-]{43}$/)
        expect(created.body.name).toBe("ci")
        expect(created.body.prefix).toBe(created.body.key.slice(0, 8))
        expect(created.body.last_four).toBe(created.body.key.slice(-4))

        const list = yield* request(api, "GET", "/v1/api-keys", { key: api_key.key })
        expect(list.status).toBe(200)
        expect(list.body.data.map((k: { id: string }) => k.id)).toContain(created.body.id)
        expect(list.text).not.toContain(created.body.key)
        expect(list.text).not.toContain(api_key.key)

        const me = yield* request(api, "GET", "/v1/me", { key: created.body.key })
        expect(me.status).toBe(200)
        expect(me.body.key_id).toBe(created.body.id)
      })
  )

  it.effect("a revoked key is refused at once", () =>
    Effect.gen(function* () {
      const { api } = yield* TestGateway
      const { apiKey: api_key } = yield* newCustomer(yield* TestGateway, { name: "Revokers" })
      const second = yield* request(api, "POST", "/v1/api-keys", { key: api_key.key, body: {} })
      expect((yield* request(api, "GET", "/v1/me", { key: second.body.key })).status).toBe(200)
      const revoked = yield* request(api, "DELETE", `/v1/api-keys/${second.body.id}`, { key: api_key.key })
      expect(revoked.status).toBe(200)
      expect(revoked.body.revoked_at).not.toBeNull()
      const after = yield* request(api, "GET", "/v1/me", { key: second.body.key })
      expect(after.status).toBe(401)
      expect(after.headers.get("content-type")).toBe("application/problem+json")
      expect(after.body.code).toBe("invalid_api_key")
    })
  )

  it.effect("a suspended customer's keys are refused at once, and work again on resume", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const { api } = gateway
      const admin = yield* adminOf(gateway)
      const { customer, apiKey: api_key } = yield* newCustomer(gateway, { name: "Suspendable" })
      expect((yield* request(api, "GET", "/v1/me", { key: api_key.key })).status).toBe(200)
      yield* admin.SuspendCustomer({ id: customer.id })
      const refused = yield* request(api, "GET", "/v1/me", { key: api_key.key })
      expect(refused.status).toBe(401)
      expect(refused.body.code).toBe("customer_suspended")
      yield* admin.ResumeCustomer({ id: customer.id })
      expect((yield* request(api, "GET", "/v1/me", { key: api_key.key })).status).toBe(200)
    })
  )

  it.effect("the plan's request rate answers 429 with Retry-After beyond its burst", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const { api } = gateway
      const { customer, apiKey: api_key } = yield* newCustomer(gateway, {
        name: "Chatty",
        plan: { api_requests_per_second: 2 }
      })
      expect(customer.plan.api_requests_per_second).toBe(2)
      const statuses: Array<number> = []
      let limited: Reply | undefined
      for (let i = 0; i < 10; i++) {
        const reply = yield* request(api, "GET", "/v1/me", { key: api_key.key })
        statuses.push(reply.status)
        if (reply.status === 429) limited = reply
      }
      expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(4)
      expect(statuses).toContain(429)
      expect(limited?.headers.get("content-type")).toBe("application/problem+json")
      expect(limited?.body.code).toBe("rate_limited")
      expect(Number(limited?.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
    })
  )

  it.effect(
    "creating beyond the plan's key limit is a 403 plan_limit_reached, and revoking frees a slot",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { api } = gateway
        const { apiKey: api_key } = yield* newCustomer(gateway, {
          name: "Two Keys",
          plan: { max_api_keys: 2 }
        })
        const second = yield* request(api, "POST", "/v1/api-keys", { key: api_key.key, body: {} })
        expect(second.status).toBe(201)
        const third = yield* request(api, "POST", "/v1/api-keys", { key: api_key.key, body: {} })
        expect(third.status).toBe(403)
        expect(third.body.code).toBe("plan_limit_reached")
        expect(third.body.limit).toBe("max_api_keys")
        yield* request(api, "DELETE", `/v1/api-keys/${second.body.id}`, { key: api_key.key })
        expect((yield* request(api, "POST", "/v1/api-keys", { key: api_key.key, body: {} })).status).toBe(201)
      })
  )

  it.effect("Idempotency-Key: the same request replays the first answer, another request is 422", () =>
    Effect.gen(function* () {
      const { api } = yield* TestGateway
      const { apiKey: api_key } = yield* newCustomer(yield* TestGateway, { name: "Retrier" })
      const headers = { "idempotency-key": "create-ci-key-1" }
      const first = yield* request(api, "POST", "/v1/api-keys", {
        key: api_key.key,
        body: { name: "ci" },
        headers
      })
      const again = yield* request(api, "POST", "/v1/api-keys", {
        key: api_key.key,
        body: { name: "ci" },
        headers
      })
      expect(first.status).toBe(201)
      expect(again.status).toBe(201)
      expect(again.body).toEqual(first.body)
      expect(again.headers.get("idempotent-replayed")).toBe("true")
      const list = yield* request(api, "GET", "/v1/api-keys", { key: api_key.key })
      expect(list.body.data).toHaveLength(2)

      const other = yield* request(api, "POST", "/v1/api-keys", {
        key: api_key.key,
        body: { name: "cd" },
        headers
      })
      expect(other.status).toBe(422)
      expect(other.body.code).toBe("idempotency_key_reused")

      // keys are scoped per customer: another customer may use the same key freely
      const { apiKey: otherCustomer } = yield* newCustomer(yield* TestGateway, { name: "Neighbour" })
      const theirs = yield* request(api, "POST", "/v1/api-keys", {
        key: otherCustomer.key,
        body: { name: "ci" },
        headers
      })
      expect(theirs.status).toBe(201)
      expect(theirs.body.id).not.toBe(first.body.id)
    })
  )

  it.effect(
    "Idempotency-Key: a duplicate while the first is in flight is 409, and a failed first try frees the key",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { api, databaseUrl } = gateway
        const admin = yield* adminOf(gateway)
        const { customer, apiKey: api_key } = yield* newCustomer(gateway, {
          name: "Racer",
          plan: { max_api_keys: 1 }
        })
        const sql = yield* sqlFor(databaseUrl)
        // hold the lock a first request holds while it runs
        const duplicate = yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`SELECT pg_advisory_xact_lock(hashtext(${customer.id}), hashtext('inflight'))`
            return yield* request(api, "POST", "/v1/api-keys", {
              key: api_key.key,
              body: {},
              headers: { "idempotency-key": "inflight" }
            })
          })
        )
        expect(duplicate.status).toBe(409)
        expect(duplicate.body.code).toBe("idempotency_key_in_use")

        const refused = yield* request(api, "POST", "/v1/api-keys", {
          key: api_key.key,
          body: {},
          headers: { "idempotency-key": "over-limit" }
        })
        expect(refused.status).toBe(403)
        const rows = yield* sql`SELECT 1 FROM idempotency_keys WHERE customer_id = ${customer.id}`
        expect(rows).toHaveLength(0)
        yield* admin.SetPlan({ id: customer.id, plan: { max_api_keys: 2 } })
        const retried = yield* request(api, "POST", "/v1/api-keys", {
          key: api_key.key,
          body: {},
          headers: { "idempotency-key": "over-limit" }
        })
        expect(retried.status).toBe(201)
      }).pipe(Effect.scoped)
  )

  it.effect("Idempotency-Key: concurrent duplicates create exactly one key", () =>
    Effect.gen(function* () {
      const { api } = yield* TestGateway
      const { apiKey: api_key } = yield* newCustomer(yield* TestGateway, { name: "Stampede" })
      const replies = yield* Effect.all(
        Array.from({ length: 8 }, () =>
          request(api, "POST", "/v1/api-keys", {
            key: api_key.key,
            body: { name: "once" },
            headers: { "idempotency-key": "stampede" }
          })
        ),
        { concurrency: "unbounded" }
      )
      const created = replies.filter((r) => r.status === 201)
      expect(replies.every((r) => r.status === 201 || r.status === 409)).toBe(true)
      expect(created.length).toBeGreaterThanOrEqual(1)
      expect(new Set(created.map((r) => r.body.id)).size).toBe(1)
      const list = yield* request(api, "GET", "/v1/api-keys", { key: api_key.key })
      expect(list.body.data.filter((k: { name: string | null }) => k.name === "once")).toHaveLength(1)
    })
  )

  it.effect("no table holds a key's plaintext, only its hash", () =>
    Effect.gen(function* () {
      const { api, databaseUrl } = yield* TestGateway
      const { apiKey: api_key } = yield* newCustomer(yield* TestGateway, { name: "Secretive" })
      // with an Idempotency-Key too: the stored answer that replays the key must not hold it in clear
      const created = yield* request(api, "POST", "/v1/api-keys", {
        key: api_key.key,
        body: { name: "x" },
        headers: { "idempotency-key": "secretive-1" }
      })
      const replayed = yield* request(api, "POST", "/v1/api-keys", {
        key: api_key.key,
        body: { name: "x" },
        headers: { "idempotency-key": "secretive-1" }
      })
      expect(replayed.body.key).toBe(created.body.key)
      const plaintexts = [api_key.key, created.body.key as string]
      const sql = yield* sqlFor(databaseUrl)
      const columns = yield* sql<{ table_name: string; column_name: string }>`
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea')`
      expect(columns.length).toBeGreaterThan(5)
      for (const { table_name, column_name } of columns) {
        for (const plaintext of plaintexts) {
          const found = yield* sql<{ n: number }>`
            SELECT count(*)::int AS n FROM ${sql(table_name)}
            WHERE position(${plaintext} in convert_from(convert_to(${sql(column_name)}::text, 'UTF8'), 'UTF8')) > 0
               OR position(${Buffer.from(plaintext).toString("hex")} in encode(convert_to(${sql(column_name)}::text, 'UTF8'), 'hex')) > 0`
          expect(found[0]!.n, `${table_name}.${column_name}`).toBe(0)
        }
      }
      const hashes = yield* sql<{
        n: number
      }>`SELECT count(*)::int AS n FROM api_keys WHERE key_hash = sha256(${plaintexts[1]!}::bytea)`
      expect(hashes[0]!.n).toBe(1)
    }).pipe(Effect.scoped)
  )

  it.effect("revoking twice answers the revoked key again, with one audit row", () =>
    Effect.gen(function* () {
      const { api } = yield* TestGateway
      const { apiKey: api_key } = yield* newCustomer(yield* TestGateway, { name: "Twice" })
      const second = yield* request(api, "POST", "/v1/api-keys", { key: api_key.key, body: {} })
      const first = yield* request(api, "DELETE", `/v1/api-keys/${second.body.id}`, { key: api_key.key })
      const again = yield* request(api, "DELETE", `/v1/api-keys/${second.body.id}`, { key: api_key.key })
      expect(again.status).toBe(200)
      expect(again.body.revoked_at).toBe(first.body.revoked_at)
      const log = yield* request(api, "GET", `/v1/audit-events?resource_id=${second.body.id}`, {
        key: api_key.key
      })
      expect(log.body.data.map((e: { action: string }) => e.action)).toEqual([
        "api_key.revoked",
        "api_key.created"
      ])
    })
  )

  it.effect("last_used_at is recorded in batches, not with a write per request", () =>
    Effect.gen(function* () {
      const { api } = yield* TestGateway
      const { apiKey: api_key } = yield* newCustomer(yield* TestGateway, { name: "Busy" })
      const before = yield* request(api, "GET", "/v1/api-keys", { key: api_key.key })
      const usedAt = Date.now()
      // the batch is flushed every few seconds; poll for it rather than assume a time
      const lastUsed = yield* waitFor(
        "last_used_at is recorded",
        Effect.map(
          request(api, "GET", "/v1/api-keys", { key: api_key.key }),
          (list) =>
            list.body.data.find((k: { id: string }) => k.id === api_key.id).last_used_at as string | null
        ),
        (usedAt) => usedAt !== null,
        { attempts: 100, everyMillis: 200 }
      )
      expect(before.body.data[0].last_used_at).toBeNull()
      expect(Date.parse(lastUsed!)).toBeGreaterThanOrEqual(usedAt - 1000)
    })
  )
})
