import { expect, layer } from "@effect/vitest"
import { Effect, Result } from "effect"
import * as http from "node:http"
import * as zlib from "node:zlib"
import { isTokenRefused } from "@whatisup/cli/adminClient"
import { adminOf, newCustomer } from "./support/admin.ts"
import { apiClient } from "./support/api.ts"
import { lockTable, sqlFor } from "./support/database.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { request } from "./support/http.ts"
import { waitFor } from "./support/waits.ts"

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** A GET whose answer is taken as it came over the wire: fetch would decompress it out of sight. */
const raw = (url: string, headers: Record<string, string>) =>
  Effect.promise(
    () =>
      new Promise<{ readonly headers: http.IncomingHttpHeaders; readonly body: Buffer }>(
        (resolve, reject) => {
          http
            .get(url, { headers }, (response) => {
              const chunks: Array<Buffer> = []
              response.on("data", (chunk: Buffer) => chunks.push(chunk))
              response.on("end", () => resolve({ headers: response.headers, body: Buffer.concat(chunks) }))
            })
            .on("error", reject)
        }
      )
  )

layer(layerTestGateway(), { timeout: 120_000, excludeTestServices: true })("operations endpoints", (it) => {
  it.effect("healthz and readyz answer ok once migrations are applied", () =>
    Effect.gen(function* () {
      const { system } = yield* apiClient((yield* TestGateway).api)
      expect(yield* system.healthz({})).toEqual({ status: "ok" })
      expect(yield* system.readyz({})).toEqual({ status: "ok" })
    })
  )

  it.effect("openapi.json is an OpenAPI 3.1 document of the public API with problem responses", () =>
    Effect.gen(function* () {
      const { api } = yield* TestGateway
      const reply = yield* request(api, "GET", "/openapi.json")
      expect(reply.status).toBe(200)
      expect(reply.body.openapi).toBe("3.1.0")
      expect(Object.keys(reply.body.paths)).toEqual(
        expect.arrayContaining([
          "/v1/me",
          "/v1/api-keys",
          "/v1/api-keys/{id}",
          "/v1/audit-events",
          "/healthz"
        ])
      )
      const create = reply.body.paths["/v1/api-keys"].post
      expect(Object.keys(create.responses)).toEqual(
        expect.arrayContaining(["201", "400", "401", "409", "422", "429"])
      )
      expect(Object.keys(create.responses["400"].content)).toEqual(["application/problem+json"])
      expect(reply.body.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" })
      expect(reply.text).not.toContain("/metrics")
    })
  )

  it.effect("docs are served inline, with no third-party script", () =>
    Effect.gen(function* () {
      const { api } = yield* TestGateway
      const reply = yield* request(api, "GET", "/docs")
      expect(reply.status).toBe(200)
      expect(reply.headers.get("content-type")).toMatch(/text\/html/)
      expect(reply.text).toContain("WhatIsUp gateway API")
      expect(reply.text).not.toMatch(/<script[^>]+src=["']https?:/)
    })
  )

  it.effect(
    "every response carries the gateway's own request id; a client's X-Request-Id is kept beside it, never in its place",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { api } = gateway
        const { key } = yield* newCustomer(gateway, { name: "Traced" })
        const generated = yield* request(api, "GET", "/healthz")
        expect(generated.headers.get("x-request-id")).toMatch(uuid)
        expect(generated.headers.get("x-client-request-id")).toBeNull()

        const traced = yield* request(api, "POST", "/v1/api-keys", {
          key,
          body: { name: "traced" },
          headers: { "x-request-id": "trace-abc.1" }
        })
        const ours = traced.headers.get("x-request-id")
        expect(ours).toMatch(uuid)
        expect(traced.headers.get("x-client-request-id")).toBe("trace-abc.1")
        const audit = yield* request(api, "GET", "/v1/audit-events?limit=1", { key })
        expect(audit.body.data[0]).toMatchObject({
          action: "api_key.created",
          request_id: ours,
          client_request_id: "trace-abc.1"
        })

        // a client cannot make its request pass for another: the same id twice gets two ids of ours
        const again = yield* request(api, "GET", "/v1/me", { key, headers: { "x-request-id": ours! } })
        expect(again.headers.get("x-request-id")).not.toBe(ours)
        expect(again.headers.get("x-client-request-id")).toBe(ours)

        const refused = yield* request(api, "GET", "/healthz", {
          headers: { "x-request-id": "bad id with spaces" }
        })
        expect(refused.headers.get("x-request-id")).toMatch(uuid)
        expect(refused.headers.get("x-client-request-id")).toBeNull()
      })
  )

  it.effect("the docs are served gzipped to a client that takes gzip", () =>
    Effect.gen(function* () {
      const { api } = yield* TestGateway
      const plain = yield* raw(`${api}/docs`, {})
      expect(plain.headers["content-encoding"]).toBeUndefined()
      expect(plain.headers["vary"]).toMatch(/accept-encoding/i)
      for (const acceptEncoding of ["gzip", "br, gzip;q=0.8", "*"]) {
        const zipped = yield* raw(`${api}/docs`, { "accept-encoding": acceptEncoding })
        expect(zipped.headers["content-encoding"], acceptEncoding).toBe("gzip")
        expect(zlib.gunzipSync(zipped.body).equals(plain.body)).toBe(true)
        expect(zipped.body.length).toBeLessThan(plain.body.length / 3)
      }
      for (const acceptEncoding of ["identity", "gzip;q=0", "br"]) {
        const refused = yield* raw(`${api}/docs`, { "accept-encoding": acceptEncoding })
        expect(refused.headers["content-encoding"], acceptEncoding).toBeUndefined()
      }
    })
  )

  it.effect(
    "metrics are on the admin listener, not the public one, and count requests by route and status",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { api, admin } = gateway
        const { apiKey: api_key, client } = yield* newCustomer(gateway, { name: "Measured" })
        yield* client.me.get({})
        // an unknown key, and paths outside the API: raw requests
        yield* request(api, "DELETE", `/v1/api-keys/${api_key.id}`, { key: `wiu_${"B".repeat(43)}` })
        expect((yield* request(api, "GET", "/metrics")).status).toBe(404)
        const metrics = yield* request(admin, "GET", "/metrics", { key: gateway.adminToken })
        expect(metrics.status).toBe(200)
        expect(metrics.text).toMatch(
          /whatisup_http_requests_total\{[^}]*route="\/v1\/me"[^}]*status="200"[^}]*\} [1-9]/
        )
        expect(metrics.text).toMatch(/route="\/v1\/api-keys\/\{id\}",method="DELETE",status="401"/)
        expect(metrics.text).toContain("whatisup_http_request_duration_seconds_bucket")
        expect(metrics.text).not.toContain(api_key.id)

        // whatever is requested, the label set stays the API's routes
        for (const path of ["/v1/random-1", "/v1/random-2", "/v1/api-keys/garbage", "/nothing"]) {
          yield* request(api, "GET", path)
        }
        const after = (yield* request(admin, "GET", "/metrics", { key: gateway.adminToken })).text
        expect(after).not.toMatch(/="[^"\n]*(random|garbage|nothing)/)
        expect(after).toMatch(/route="unmatched"/)
      })
  )

  it.effect(
    "the admin RPC refuses a missing or wrong operator token, with a 401 before the call is read",
    () =>
      Effect.gen(function* () {
        const { admin } = yield* TestGateway
        for (const token of [undefined, "wrong", `${"x".repeat(40)}`]) {
          const operator = yield* adminOf({ admin, adminToken: token })
          const refused = yield* operator.ListCustomers().pipe(Effect.flip)
          expect(isTokenRefused(refused)).toBe(true)
        }
      })
  )

  it.effect("a failure inside the gateway is a 500 problem that leaks no internals", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const { api, databaseUrl, logs } = gateway
      const { apiKey: api_key, client } = yield* newCustomer(gateway, { name: "Unlucky" })
      const sql = yield* sqlFor(databaseUrl)
      yield* sql`ALTER TABLE audit_events RENAME TO audit_events_away`
      const reply = yield* request(api, "GET", "/v1/audit-events", { key: api_key.key }).pipe(
        Effect.ensuring(sql`ALTER TABLE audit_events_away RENAME TO audit_events`.pipe(Effect.orDie))
      )
      expect(reply.status).toBe(500)
      expect(reply.headers.get("content-type")).toBe("application/problem+json")
      expect(reply.body.code).toBe("internal_error")
      expect(reply.headers.get("x-request-id")).toBeTruthy()
      expect(reply.text).not.toMatch(/audit_events|relation|SELECT|sql/i)
      // the operator's log has what the answer leaves out, under the same request id
      const [failure, ...more] = logs.take("ERROR", "request failed")
      expect(more).toEqual([])
      expect(failure!.cause).toContain('relation "audit_events" does not exist')
      expect(failure!.annotations.request_id).toBe(reply.headers.get("x-request-id"))
      yield* client.audit.list({ query: {} })
    }).pipe(Effect.scoped)
  )

  it.effect(
    "while the database is unreachable the API answers 503 with Retry-After, and recovers after",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { api, databaseUrl } = gateway
        const { apiKey: api_key, client } = yield* newCustomer(gateway, { name: "Patient" })
        const name = new URL(databaseUrl).pathname.slice(1)
        const server = new URL(databaseUrl)
        server.pathname = "/postgres"
        const admin = yield* sqlFor(server.toString())
        const restore = admin`ALTER DATABASE ${admin(name)} ALLOW_CONNECTIONS true`.pipe(Effect.orDie)
        // the status, content type and Retry-After of a 503 are the point: raw requests
        const outage = yield* Effect.gen(function* () {
          yield* admin`ALTER DATABASE ${admin(name)} ALLOW_CONNECTIONS false`
          yield* admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ${name} AND pid <> pg_backend_pid()`
          return {
            ready: yield* request(api, "GET", "/readyz"),
            me: yield* request(api, "GET", "/v1/me", { key: api_key.key })
          }
        }).pipe(Effect.ensuring(restore))
        expect(outage.ready.status).toBe(503)
        expect(outage.ready.body.code).toBe("not_ready")
        expect(outage.me.status).toBe(503)
        expect(outage.me.headers.get("content-type")).toBe("application/problem+json")
        expect(outage.me.body.code).toBe("database_unavailable")
        expect(outage.me.headers.get("retry-after")).toBe("5")

        yield* waitFor(
          "the API answers again once the database is back",
          Effect.result(client.me.get({})),
          Result.isSuccess,
          {
            attempts: 100,
            everyMillis: 100
          }
        )
      }).pipe(Effect.scoped)
  )

  it.effect(
    "a statement the database cancels for waiting too long on a lock (a role's statement_timeout or lock_timeout) answers 503, not 500",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { api, databaseUrl, servingDatabaseUrl } = gateway
        const { apiKey: api_key, client } = yield* newCustomer(gateway, { name: "Hurried" })
        const sql = yield* sqlFor(databaseUrl)
        const role = decodeURIComponent(new URL(servingDatabaseUrl).username)
        expect(role).not.toBe(decodeURIComponent(new URL(databaseUrl).username))
        /** The gateway's connections opened again, with the role's settings as they now are. */
        const reconnected = Effect.gen(function* () {
          yield* sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${role}`
          // a read that queries the database (GET /v1/me answers from the key cache): a terminated
          // connection still in the pool fails it until the pool has let go of every one
          yield* waitFor(
            "the API answers again on new connections",
            Effect.result(client.audit.list({ query: {} })),
            Result.isSuccess,
            { attempts: 100, everyMillis: 100 }
          )
        }).pipe(Effect.orDie)
        for (const setting of ["statement_timeout", "lock_timeout"]) {
          const reply = yield* Effect.gen(function* () {
            yield* sql`ALTER ROLE ${sql(role)} SET ${sql.literal(setting)} = '300ms'`
            yield* reconnected
            const lock = yield* lockTable(sql, "audit_events", "ACCESS EXCLUSIVE")
            return yield* request(api, "GET", "/v1/audit-events", { key: api_key.key }).pipe(
              Effect.ensuring(lock.release)
            )
          }).pipe(
            Effect.scoped,
            Effect.ensuring(
              Effect.andThen(
                sql`ALTER ROLE ${sql(role)} RESET ${sql.literal(setting)}`.pipe(Effect.orDie),
                reconnected
              )
            )
          )
          expect(reply.status, setting).toBe(503)
          expect(reply.headers.get("content-type")).toBe("application/problem+json")
          expect(reply.body.code).toBe("database_unavailable")
          expect(reply.headers.get("retry-after")).toBe("5")
        }
        yield* client.audit.list({ query: {} })
      }).pipe(Effect.scoped)
  )
})
