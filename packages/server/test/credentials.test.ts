import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import { sqlFor, testDatabase } from "./support/database.ts"
import { adminOf, newCustomer } from "./support/admin.ts"
import { type ApiClient, apiClient } from "./support/api.ts"
import { gatewayEnvironment, startGateway } from "./support/gateway.ts"
import { waitFor, waitUntil } from "./support/waits.ts"

/** How the gateway answers a key: "accepted", or the code it is refused with. */
const verdict = (client: ApiClient) =>
  client.me.get({}).pipe(
    Effect.map(() => "accepted" as const),
    Effect.catchTag("Unauthorized", (problem) => Effect.succeed(problem.code))
  )

/** Two gateways on one database, with the same master keys. */
const twoGateways = Effect.gen(function* () {
  const database = yield* testDatabase
  const shared = { WHATISUP_MASTER_KEYS: `k1:${crypto.randomBytes(32).toString("base64")}` }
  const a = yield* startGateway(yield* gatewayEnvironment(database.url, shared))
  const b = yield* startGateway(yield* gatewayEnvironment(database.url, shared))
  return { database, a, b }
})

describe("credentials across gateway processes", () => {
  it.live(
    "a key revoked or a customer suspended through one gateway stops working on another that had it cached",
    () =>
      Effect.gen(function* () {
        const { a, b } = yield* twoGateways
        const { key, customerId, client: onA } = yield* newCustomer(a, { name: "Two Doors" })
        const second = yield* onA.apiKeys.create({ headers: {}, payload: {} })

        // b caches both keys
        const onB = yield* apiClient(b.api, key)
        const secondOnB = yield* apiClient(b.api, second.key)
        expect(yield* verdict(onB)).toBe("accepted")
        expect(yield* verdict(secondOnB)).toBe("accepted")

        yield* onA.apiKeys.revoke({ params: { id: second.id } })
        yield* waitFor(
          "the key revoked through a is refused by b",
          verdict(secondOnB),
          (v) => v === "invalid_api_key"
        )

        yield* (yield* adminOf(a)).SuspendCustomer({ id: customerId })
        yield* waitFor(
          "the customer suspended through a is refused by b",
          verdict(onB),
          (v) => v === "customer_suspended"
        )
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "GET /v1/me answers the customer as authenticated: a plan changed through one gateway shows at once there and soon on another",
    () =>
      Effect.gen(function* () {
        const { a, b } = yield* twoGateways
        const { key, customerId, client: onA } = yield* newCustomer(a, { name: "Planned" })
        const onB = yield* apiClient(b.api, key)
        const messagesPerMinute = (client: ApiClient) =>
          Effect.map(client.me.get({}), (me) => me.customer.plan.messages_per_minute)
        const before = yield* messagesPerMinute(onB)
        expect(yield* messagesPerMinute(onA)).toBe(before)

        const changed = yield* (yield* adminOf(a)).SetPlan({
          id: customerId,
          plan: { messages_per_minute: before + 17 }
        })
        expect(changed.plan.messages_per_minute).toBe(before + 17)
        expect(yield* onA.me.get({})).toMatchObject({ customer: changed })
        yield* waitFor(
          "b answers the new plan",
          onB.me.get({}),
          (me) => me.customer.plan.messages_per_minute === before + 17
        )
        expect(yield* onB.me.get({})).toMatchObject({ customer: changed })
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "revokes, channel deletions and plan changes read again only the keys they name: another customer's keys stay cached in every process",
    () =>
      Effect.gen(function* () {
        const { database, a, b } = yield* twoGateways
        const owner = yield* sqlFor(database.url)
        const { client: attacker } = yield* newCustomer(a, { name: "Forgetter" })
        const bystander = yield* newCustomer(a, { name: "Bystander" })
        const bystanderOn = [yield* apiClient(a.api, bystander.key), yield* apiClient(b.api, bystander.key)]
        for (const client of bystanderOn) expect(yield* verdict(client)).toBe("accepted")
        // behind the gateways' backs, with no word to any cache: a gateway that reads the key again refuses it
        yield* owner`UPDATE api_keys SET revoked_at = now() WHERE id = ${bystander.keyId}`

        // the other customer revokes a key, then again and again, and deletes a channel with a key bound to it and one without
        const spare = yield* attacker.apiKeys.create({ headers: {}, payload: {} })
        const spareOnB = yield* apiClient(b.api, spare.key)
        expect(yield* verdict(spareOnB)).toBe("accepted")
        yield* attacker.apiKeys.revoke({ params: { id: spare.id } })
        yield* waitFor("the revoked key is refused by b", verdict(spareOnB), (v) => v === "invalid_api_key")
        for (let i = 0; i < 3; i++) yield* attacker.apiKeys.revoke({ params: { id: spare.id } })
        const withKey = yield* attacker.channels.create({ headers: {}, payload: {} })
        const bound = yield* attacker.apiKeys.create({ headers: {}, payload: { channel_id: withKey.id } })
        const boundOnB = yield* apiClient(b.api, bound.key)
        expect(yield* verdict(boundOnB)).toBe("accepted")
        yield* attacker.channels.delete({ params: { id: withKey.id } })
        yield* waitFor(
          "the key bound to the deleted channel is refused by b",
          verdict(boundOnB),
          (v) => v === "invalid_api_key"
        )
        const withoutKey = yield* attacker.channels.create({ headers: {}, payload: {} })
        yield* attacker.channels.delete({ params: { id: withoutKey.id } })
        for (const client of bystanderOn) expect(yield* verdict(client)).toBe("accepted")

        // the bystander's own plan changes: its keys are read again, in both processes
        yield* (yield* adminOf(a)).SetPlan({ id: bystander.customerId, plan: { max_api_keys: 11 } })
        for (const client of bystanderOn) {
          yield* waitFor("the bystander's key is read again", verdict(client), (v) => v === "invalid_api_key")
        }
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
        for (let i = 0; i < 25; i++) expect((yield* created.client.me.get({})).key_id).toBe(created.keyId)
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
