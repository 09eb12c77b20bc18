import { expect, layer } from "@effect/vitest"
import { Effect, Result } from "effect"
import { adminOf, newCustomer } from "./support/admin.ts"
import { apiClient } from "./support/api.ts"
import { columnsHolding, sqlFor } from "./support/database.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { type Reply, request } from "./support/http.ts"
import { waitFor } from "./support/waits.ts"

layer(layerTestGateway(), { timeout: 120_000, excludeTestServices: true })("API keys", (it) => {
  it.effect(
    "a new key is answered once with its plaintext, and lists show only its prefix and last four",
    () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const { key, client } = yield* newCustomer(yield* TestGateway, { name: "Keys Ltd" })
        const created = yield* client.apiKeys.create({ headers: {}, payload: { name: "ci" } })
        expect(created.key).toMatch(/^wiu_[A-Za-z0-9_-]{43}$/)
        expect(created.name).toBe("ci")
        expect(created.prefix).toBe(created.key.slice(0, 8))
        expect(created.last_four).toBe(created.key.slice(-4))

        // what the list carries on the wire, not what a client decodes from it
        const list = yield* request(api, "GET", "/v1/api-keys", { key })
        expect(list.status).toBe(200)
        expect(list.body.data.map((k: { id: string }) => k.id)).toContain(created.id)
        expect(list.text).not.toContain(created.key)
        expect(list.text).not.toContain(key)

        const me = yield* (yield* apiClient(api, created.key)).me.get({})
        expect(me.key_id).toBe(created.id)
      })
  )

  it.effect("a revoked key is refused at once", () =>
    Effect.gen(function* () {
      const { api } = yield* TestGateway
      const { client } = yield* newCustomer(yield* TestGateway, { name: "Revokers" })
      const second = yield* client.apiKeys.create({ headers: {}, payload: {} })
      const secondClient = yield* apiClient(api, second.key)
      expect((yield* secondClient.me.get({})).key_id).toBe(second.id)
      const revoked = yield* client.apiKeys.revoke({ params: { id: second.id } })
      expect(revoked.revoked_at).not.toBeNull()
      // decoded as the domain's problem: a 401 answered as application/problem+json
      expect(yield* Effect.flip(secondClient.me.get({}))).toMatchObject({
        _tag: "Unauthorized",
        status: 401,
        code: "invalid_api_key"
      })
    })
  )

  it.effect("a suspended customer's keys are refused at once, and work again on resume", () =>
    Effect.gen(function* () {
      const admin = yield* adminOf(yield* TestGateway)
      const { customerId, client } = yield* newCustomer(yield* TestGateway, { name: "Suspendable" })
      expect((yield* client.me.get({})).customer.status).toBe("active")
      yield* admin.SuspendCustomer({ id: customerId })
      expect(yield* Effect.flip(client.me.get({}))).toMatchObject({
        _tag: "Unauthorized",
        status: 401,
        code: "customer_suspended"
      })
      yield* admin.ResumeCustomer({ id: customerId })
      expect((yield* client.me.get({})).customer.status).toBe("active")
    })
  )

  it.effect("the plan's request rate answers 429 with Retry-After beyond its burst", () =>
    Effect.gen(function* () {
      const { api } = yield* TestGateway
      const { customer: created, key } = yield* newCustomer(yield* TestGateway, {
        name: "Chatty",
        plan: { api_requests_per_second: 2 }
      })
      expect(created.plan.api_requests_per_second).toBe(2)
      // the headers of a refusal are the point: raw requests
      const statuses: Array<number> = []
      let limited: Reply | undefined
      for (let i = 0; i < 10; i++) {
        const reply = yield* request(api, "GET", "/v1/me", { key })
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
        const { client } = yield* newCustomer(yield* TestGateway, {
          name: "Two Keys",
          plan: { max_api_keys: 2 }
        })
        const second = yield* client.apiKeys.create({ headers: {}, payload: {} })
        const third = yield* Effect.flip(client.apiKeys.create({ headers: {}, payload: {} }))
        expect(third).toMatchObject({
          _tag: "PlanLimitReached",
          status: 403,
          code: "plan_limit_reached",
          limit: "max_api_keys"
        })
        yield* client.apiKeys.revoke({ params: { id: second.id } })
        yield* client.apiKeys.create({ headers: {}, payload: {} })
      })
  )

  it.effect("Idempotency-Key: the same request replays the first answer, another request is 422", () =>
    Effect.gen(function* () {
      const { client } = yield* newCustomer(yield* TestGateway, { name: "Retrier" })
      const headers = { "idempotency-key": "create-ci-key-1" }
      const first = yield* client.apiKeys.create({ headers, payload: { name: "ci" } })
      const [again, response] = yield* client.apiKeys.create({
        headers,
        payload: { name: "ci" },
        responseMode: "decoded-and-response"
      })
      expect(response.status).toBe(201)
      expect(again).toEqual(first)
      expect(response.headers["idempotent-replayed"]).toBe("true")
      expect((yield* client.apiKeys.list({ query: {} })).data).toHaveLength(2)

      const other = yield* Effect.flip(client.apiKeys.create({ headers, payload: { name: "cd" } }))
      expect(other).toMatchObject({
        _tag: "IdempotencyKeyReused",
        status: 422,
        code: "idempotency_key_reused"
      })

      // keys are scoped per customer: another customer may use the same key freely
      const neighbour = yield* newCustomer(yield* TestGateway, { name: "Neighbour" })
      const theirs = yield* neighbour.client.apiKeys.create({ headers, payload: { name: "ci" } })
      expect(theirs.id).not.toBe(first.id)
    })
  )

  it.effect(
    "Idempotency-Key: a duplicate while the first is in flight is 409, and a failed first try frees the key",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const admin = yield* adminOf(gateway)
        const { customerId, keyId, client } = yield* newCustomer(yield* TestGateway, {
          name: "Racer",
          plan: { max_api_keys: 1 }
        })
        const sql = yield* sqlFor(gateway.databaseUrl)
        // hold the lock a first request holds while it runs
        const duplicate = yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`SELECT pg_advisory_xact_lock(hashtext(${keyId}), hashtext('inflight'))`
            return yield* Effect.flip(
              client.apiKeys.create({ headers: { "idempotency-key": "inflight" }, payload: {} })
            )
          })
        )
        expect(duplicate).toMatchObject({
          _tag: "IdempotencyKeyInUse",
          status: 409,
          code: "idempotency_key_in_use"
        })

        const overLimit = { headers: { "idempotency-key": "over-limit" }, payload: {} }
        const refused = yield* Effect.flip(client.apiKeys.create(overLimit))
        expect(refused).toMatchObject({ _tag: "PlanLimitReached", status: 403 })
        const rows = yield* sql`SELECT 1 FROM idempotency_keys WHERE customer_id = ${customerId}`
        expect(rows).toHaveLength(0)
        yield* admin.SetPlan({ id: customerId, plan: { max_api_keys: 2 } })
        const retried = yield* client.apiKeys.create(overLimit)
        expect(retried.key).toMatch(/^wiu_/)
      }).pipe(Effect.scoped)
  )

  it.effect(
    "Idempotency-Key: a stored answer replays to the key that made it alone, and never the plaintext of a key revoked since",
    () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const { key, client } = yield* newCustomer(yield* TestGateway, { name: "Two Hands" })
        const other = yield* client.apiKeys.create({ headers: {}, payload: { name: "other hand" } })
        const onOther = yield* apiClient(api, other.key)
        const headers = { "idempotency-key": "create-deploy-key" }
        const created = yield* client.apiKeys.create({ headers, payload: { name: "deploy" } })

        // the same request from another key of the customer is a request of its own
        const [theirs, response] = yield* onOther.apiKeys.create({
          headers,
          payload: { name: "deploy" },
          responseMode: "decoded-and-response"
        })
        expect(theirs.id).not.toBe(created.id)
        expect(theirs.key).not.toBe(created.key)
        expect(response.headers["idempotent-replayed"]).toBeUndefined()

        yield* client.apiKeys.revoke({ params: { id: created.id } })
        // what a replay after the revocation carries on the wire
        const replay = yield* request(api, "POST", "/v1/api-keys", {
          key,
          headers,
          body: { name: "deploy" }
        })
        expect(replay.status).toBe(409)
        expect(replay.headers.get("content-type")).toBe("application/problem+json")
        expect(replay.body).toMatchObject({ code: "idempotent_answer_revoked", resource_id: created.id })
        expect(replay.text).not.toContain(created.key)
        // the other key's answer still replays to it while its key lives
        expect((yield* onOther.apiKeys.create({ headers, payload: { name: "deploy" } })).key).toBe(theirs.key)
      })
  )

  it.effect("Idempotency-Key: concurrent duplicates create exactly one key", () =>
    Effect.gen(function* () {
      const { client } = yield* newCustomer(yield* TestGateway, { name: "Stampede" })
      const replies = yield* Effect.all(
        Array.from({ length: 8 }, () =>
          Effect.result(
            client.apiKeys.create({ headers: { "idempotency-key": "stampede" }, payload: { name: "once" } })
          )
        ),
        { concurrency: "unbounded" }
      )
      const created = replies.filter(Result.isSuccess).map((reply) => reply.success)
      const refused = replies.filter(Result.isFailure).map((reply) => reply.failure)
      for (const refusal of refused)
        expect(refusal).toMatchObject({ _tag: "IdempotencyKeyInUse", status: 409 })
      expect(created.length).toBeGreaterThanOrEqual(1)
      expect(new Set(created.map((key) => key.id)).size).toBe(1)
      const list = yield* client.apiKeys.list({ query: {} })
      expect(list.data.filter((k) => k.name === "once")).toHaveLength(1)
    })
  )

  it.effect("no table holds a key's plaintext, only its hash", () =>
    Effect.gen(function* () {
      const { databaseUrl } = yield* TestGateway
      const { key, client } = yield* newCustomer(yield* TestGateway, { name: "Secretive" })
      // with an Idempotency-Key too: the stored answer that replays the key must not hold it in clear
      const headers = { "idempotency-key": "secretive-1" }
      const created = yield* client.apiKeys.create({ headers, payload: { name: "x" } })
      const replayed = yield* client.apiKeys.create({ headers, payload: { name: "x" } })
      expect(replayed.key).toBe(created.key)
      const plaintexts = [key, created.key]
      const sql = yield* sqlFor(databaseUrl)
      for (const plaintext of plaintexts) {
        const { searched, holding } = yield* columnsHolding(sql, plaintext)
        expect(searched).toBeGreaterThan(5)
        expect(holding).toEqual([])
      }
      const hashes = yield* sql<{
        n: number
      }>`SELECT count(*)::int AS n FROM api_keys WHERE key_hash = sha256(${plaintexts[1]!}::bytea)`
      expect(hashes[0]!.n).toBe(1)
    }).pipe(Effect.scoped)
  )

  it.effect("revoking twice answers the revoked key again, with one audit row", () =>
    Effect.gen(function* () {
      const { client } = yield* newCustomer(yield* TestGateway, { name: "Twice" })
      const second = yield* client.apiKeys.create({ headers: {}, payload: {} })
      const first = yield* client.apiKeys.revoke({ params: { id: second.id } })
      const again = yield* client.apiKeys.revoke({ params: { id: second.id } })
      expect(again.revoked_at).toBe(first.revoked_at)
      const log = yield* client.audit.list({ query: { resource_id: second.id } })
      expect(log.data.map((e) => e.action)).toEqual(["api_key.revoked", "api_key.created"])
    })
  )

  it.effect("last_used_at is recorded in batches, not with a write per request", () =>
    Effect.gen(function* () {
      const { keyId, client } = yield* newCustomer(yield* TestGateway, { name: "Busy" })
      const before = yield* client.apiKeys.list({ query: {} })
      const usedAt = Date.now()
      // the batch is flushed every few seconds; poll for it rather than assume a time
      const lastUsed = yield* waitFor(
        "last_used_at is recorded",
        Effect.map(
          client.apiKeys.list({ query: {} }),
          (list) => list.data.find((k) => k.id === keyId)?.last_used_at
        ),
        (lastUsed) => typeof lastUsed === "string",
        { attempts: 100, everyMillis: 200 }
      )
      expect(before.data[0]!.last_used_at).toBeNull()
      expect(Date.parse(lastUsed!)).toBeGreaterThanOrEqual(usedAt - 1000)
    })
  )
})
