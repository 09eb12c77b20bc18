import { expect, layer } from "@effect/vitest"
import type { AuditEvent } from "@whatisup/domain"
import { Effect, Exit } from "effect"
import { adminOf, newCustomer } from "./support/admin.ts"
import { apiClient } from "./support/api.ts"
import { sqlFor } from "./support/database.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { request } from "./support/http.ts"

layer(layerTestGateway(), { timeout: 120_000, excludeTestServices: true })("audit log", (it) => {
  it.effect("every change is audited with its actor, resource and request ids, newest first", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const admin = yield* adminOf(gateway)
      const { customerId, keyId, key, client } = yield* newCustomer(gateway, { name: "Audited" })
      const tracing = yield* apiClient(gateway.api, key, { headers: { "x-request-id": "req-create-1" } })
      const [created, createdResponse] = yield* tracing.apiKeys.create({
        headers: {},
        payload: { name: "to revoke" },
        responseMode: "decoded-and-response"
      })
      expect(createdResponse.headers["x-client-request-id"]).toBe("req-create-1")
      const [, revoked] = yield* client.apiKeys.revoke({
        params: { id: created.id },
        responseMode: "decoded-and-response"
      })
      yield* admin.SetPlan({ id: customerId, plan: { max_channels: 9 } })

      const log = yield* client.audit.list({ query: {} })
      expect(log.data.map((e) => e.action)).toEqual([
        "customer.plan_changed",
        "api_key.revoked",
        "api_key.created",
        "api_key.created",
        "customer.created"
      ])
      const [planChanged, revokedEvent, createdEvent] = log.data
      expect(planChanged!.actor).toEqual({ type: "operator", id: null })
      expect(planChanged!.request_id).toMatch(/^admin-[0-9a-f-]{36}$/)
      expect(revokedEvent!.actor).toEqual({ type: "api_key", id: keyId })
      expect(revokedEvent!.resource_id).toBe(created.id)
      expect(revokedEvent!.request_id).toBe(revoked.headers["x-request-id"])
      expect(createdEvent!.request_id).toBe(createdResponse.headers["x-request-id"])
      expect(createdEvent!.client_request_id).toBe("req-create-1")
      expect(revokedEvent!.client_request_id).toBeNull()
      expect(createdEvent!.data).toEqual({ name: "to revoke", channel_id: null })
      // what the log carries on the wire, not what a client decodes from it
      const wire = yield* request(gateway.api, "GET", "/v1/audit-events", { key })
      expect(wire.status).toBe(200)
      expect(wire.text).not.toContain(created.key)
    })
  )

  it.effect("filters by resource and pages with cursors", () =>
    Effect.gen(function* () {
      const { client } = yield* newCustomer(yield* TestGateway, { name: "Pager" })
      const ids: Array<string> = []
      for (let i = 0; i < 5; i++) ids.push((yield* client.apiKeys.create({ headers: {}, payload: {} })).id)
      const one = yield* client.audit.list({ query: { resource_type: "api_key", resource_id: ids[2]! } })
      expect(one.data.map((e) => e.resource_id)).toEqual([ids[2]])

      const seen: Array<string> = []
      let cursor: string | null = null
      let pages = 0
      do {
        const page: { readonly data: ReadonlyArray<AuditEvent>; readonly next_cursor: string | null } =
          yield* client.audit.list({
            query: { resource_type: "api_key", limit: 2, ...(cursor === null ? {} : { cursor }) }
          })
        seen.push(...page.data.map((e) => e.id))
        cursor = page.next_cursor
        pages++
      } while (cursor !== null && pages < 10)
      expect(pages).toBe(3)
      expect(seen).toHaveLength(6)
      expect(new Set(seen).size).toBe(6)
      expect([...seen].sort().reverse()).toEqual(seen)
    })
  )

  it.effect("rows cannot be updated, deleted or truncated, even by SQL issued directly", () =>
    Effect.gen(function* () {
      const { databaseUrl } = yield* TestGateway
      yield* newCustomer(yield* TestGateway, { name: "Tamper Target" })
      const sql = yield* sqlFor(databaseUrl)
      const before = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM audit_events`
      expect(before[0]!.n).toBeGreaterThan(0)
      for (const statement of [
        sql`UPDATE audit_events SET action = 'nothing'`,
        sql`DELETE FROM audit_events`,
        sql`TRUNCATE audit_events`
      ]) {
        const exit = yield* Effect.exit(statement)
        expect(Exit.isFailure(exit)).toBe(true)
        expect(String(Exit.isFailure(exit) ? exit.cause : "")).toMatch(/append-only/)
      }
      const after = yield* sql<{ n: number; changed: number }>`
        SELECT count(*)::int AS n, count(*) FILTER (WHERE action = 'nothing')::int AS changed FROM audit_events`
      expect(after[0]).toEqual({ n: before[0]!.n, changed: 0 })
    }).pipe(Effect.scoped)
  )

  it.effect(
    "the role the gateway serves as cannot disable the trigger, update, delete or truncate audit rows",
    () =>
      Effect.gen(function* () {
        const { databaseUrl, servingDatabaseUrl } = yield* TestGateway
        yield* newCustomer(yield* TestGateway, { name: "Inside Job" })
        const owner = yield* sqlFor(databaseUrl)
        const serving = yield* sqlFor(servingDatabaseUrl)
        // the gateway's own connections are this role's
        const roles = yield* owner<{ role: string }>`
          SELECT DISTINCT usename AS role FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'whatisup'`
        expect(roles.map((r) => r.role)).toEqual([new URL(servingDatabaseUrl).username])
        const before = yield* serving<{ n: number }>`SELECT count(*)::int AS n FROM audit_events`
        expect(before[0]!.n).toBeGreaterThan(0)
        for (const statement of [
          serving`ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change`,
          serving`ALTER TABLE audit_events DISABLE TRIGGER ALL`,
          serving`DROP TRIGGER audit_events_no_change ON audit_events`,
          serving`UPDATE audit_events SET action = 'nothing'`,
          serving`DELETE FROM audit_events`,
          serving`TRUNCATE audit_events`
        ]) {
          const exit = yield* Effect.exit(statement)
          expect(Exit.isFailure(exit)).toBe(true)
          expect(String(Exit.isFailure(exit) ? exit.cause : "")).toMatch(/must be owner|permission denied/)
        }
        const triggers = yield* owner<{ enabled: string }>`
          SELECT tgenabled AS enabled FROM pg_trigger
          WHERE tgrelid = 'audit_events'::regclass AND NOT tgisinternal`
        expect(triggers.map((t) => t.enabled)).toEqual(["O", "O"])
        const after = yield* owner<{ n: number }>`SELECT count(*)::int AS n FROM audit_events`
        expect(after[0]!.n).toBe(before[0]!.n)
      }).pipe(Effect.scoped)
  )

  it.effect("audit rows outlive what they describe", () =>
    Effect.gen(function* () {
      const { databaseUrl } = yield* TestGateway
      const { client } = yield* newCustomer(yield* TestGateway, { name: "Forgetful" })
      const created = yield* client.apiKeys.create({ headers: {}, payload: {} })
      const sql = yield* sqlFor(databaseUrl)
      // no foreign keys tie audit rows to what they describe
      const constraints = yield* sql<{ n: number }>`
        SELECT count(*)::int AS n FROM information_schema.table_constraints
        WHERE table_name = 'audit_events' AND constraint_type = 'FOREIGN KEY'`
      expect(constraints[0]!.n).toBe(0)
      yield* sql`DELETE FROM api_keys WHERE id = ${created.id}`
      const log = yield* client.audit.list({ query: { resource_id: created.id } })
      expect(log.data.map((e) => e.action)).toEqual(["api_key.created"])
    }).pipe(Effect.scoped)
  )

  it.effect("a change and its audit row commit together or not at all", () =>
    Effect.gen(function* () {
      const { api, databaseUrl, logs } = yield* TestGateway
      const { customer, key } = yield* newCustomer(yield* TestGateway, { name: "All Or Nothing" })
      const sql = yield* sqlFor(databaseUrl)
      yield* sql`
        CREATE FUNCTION refuse_key_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.action = 'api_key.created' AND NEW.customer_id = ${sql.literal(`'${customer.id}'`)} THEN
            RAISE EXCEPTION 'audit refused for the test';
          END IF;
          RETURN NEW;
        END $$`
      yield* sql`CREATE TRIGGER refuse_key_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_key_audit()`
      // a 500 is no answer the API declares: a raw request, to read the status
      const reply = yield* request(api, "POST", "/v1/api-keys", { key, body: { name: "orphan" } }).pipe(
        Effect.ensuring(sql`DROP TRIGGER refuse_key_audit ON audit_events`.pipe(Effect.orDie))
      )
      expect(reply.status).toBe(500)
      const [failure, ...more] = logs.take("ERROR", "request failed")
      expect(more).toEqual([])
      expect(failure!.cause).toContain("audit refused for the test")
      expect(failure!.annotations).toMatchObject({ method: "POST", path: "/v1/api-keys" })
      const keys = yield* sql<{
        name: string | null
      }>`SELECT name FROM api_keys WHERE customer_id = ${customer.id}`
      expect(keys.map((k) => k.name)).toEqual(["first key"])
    }).pipe(Effect.scoped)
  )
})
