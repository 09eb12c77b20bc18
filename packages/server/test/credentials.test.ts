import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import { sqlFor, testDatabase } from "./support/database.ts"
import { adminOf, newCustomer } from "./support/admin.ts"
import { gatewayEnvironment, startGateway } from "./support/gateway.ts"
import { waitUntil } from "./support/waits.ts"
import { request } from "./support/http.ts"

describe("credentials across gateway processes", () => {
  it.live(
    "a key revoked or a customer suspended through one gateway stops working on another that had it cached",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const shared = { WHATISUP_MASTER_KEYS: `k1:${crypto.randomBytes(32).toString("base64")}` }
        const a = yield* startGateway(yield* gatewayEnvironment(database.url, shared))
        const b = yield* startGateway(yield* gatewayEnvironment(database.url, shared))
        const { key, customerId } = yield* newCustomer(a, { name: "Two Doors" })
        const second = yield* request(a.api, "POST", "/v1/api-keys", { key, body: {} })

        // b caches both keys
        expect((yield* request(b.api, "GET", "/v1/me", { key })).status).toBe(200)
        expect((yield* request(b.api, "GET", "/v1/me", { key: second.body.key })).status).toBe(200)

        yield* request(a.api, "DELETE", `/v1/api-keys/${second.body.id}`, { key })
        yield* waitUntil(
          "the key revoked through a is refused by b",
          Effect.map(request(b.api, "GET", "/v1/me", { key: second.body.key }), (r) => r.status === 401)
        )

        yield* (yield* adminOf(a)).SuspendCustomer({ id: customerId })
        yield* waitUntil(
          "the customer suspended through a is refused by b",
          Effect.map(request(b.api, "GET", "/v1/me", { key }), (r) => r.body?.code === "customer_suspended")
        )
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "last_used_at costs one UPDATE per flush, not one per request",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const gateway = yield* startGateway(yield* gatewayEnvironment(database.url))
        const sql = yield* sqlFor(database.url)
        yield* sql`CREATE TABLE key_updates (n integer NOT NULL)`
        yield* sql`
          CREATE FUNCTION count_key_updates() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN INSERT INTO key_updates VALUES (1); RETURN NULL; END $$`
        yield* sql`
          CREATE TRIGGER count_key_updates AFTER UPDATE ON api_keys
          FOR EACH STATEMENT EXECUTE FUNCTION count_key_updates()`
        const created = yield* newCustomer(gateway, { name: "Counted" })
        for (let i = 0; i < 25; i++) {
          expect((yield* request(gateway.api, "GET", "/v1/me", { key: created.key })).status).toBe(200)
        }
        yield* waitUntil(
          "last_used_at is recorded",
          Effect.map(
            sql<{
              used: boolean
            }>`SELECT last_used_at IS NOT NULL AS used FROM api_keys WHERE id = ${created.keyId}`,
            (rows) => rows[0]?.used === true
          ).pipe(Effect.orDie),
          { attempts: 500 }
        )
        const updates = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM key_updates`
        expect(updates[0]!.n).toBeGreaterThanOrEqual(1)
        expect(updates[0]!.n).toBeLessThanOrEqual(3)
      }).pipe(Effect.scoped),
    120_000
  )
})
