import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import pg from "pg"

/**
 * The baseline of the reads benchmark: `GET /v1/me` as small as `node:http` and `pg` make it, without
 * schema, framework or effect, on the gateway's database.
 *
 * It does not do what the gateway does. This server hashes the bearer key (SHA-256) and makes one query
 * per request: the key joined to its customer by that hash, which both authenticates the key (it exists,
 * is not revoked, its customer is active) and reads everything /v1/me answers. The gateway hashes the key
 * the same way but finds it in its key cache, whose entry holds the key row with its customer, and
 * answers that customer with no query of its own (since e1d3dd7); the cache reads the key again, with
 * this very query, only on a miss, once its entry is 60 s old, or when a NOTIFY says the key or its
 * customer changed (revoked, suspended, a plan changed). So the benchmark compares an answer from a
 * cache with a round trip to PostgreSQL per request.
 */
const readKey = {
  name: "read-key",
  text: `
    SELECT k.id AS key_id, k.channel_id, k.revoked_at IS NOT NULL AS revoked,
      c.id, c.name, c.status, c.max_channels, c.max_api_keys, c.messages_per_minute,
      c.api_requests_per_second, c.pairing_codes_per_channel_per_hour,
      c.pairing_codes_per_customer_per_day, c.max_webhook_endpoints, c.created_at
    FROM api_keys k JOIN customers c ON c.id = k.customer_id
    WHERE k.key_hash = $1`
}

interface KeyRow {
  readonly key_id: string
  readonly channel_id: string | null
  readonly revoked: boolean
  readonly id: string
  readonly name: string
  readonly status: string
  readonly max_channels: number
  readonly max_api_keys: number
  readonly messages_per_minute: number
  readonly api_requests_per_second: number
  readonly pairing_codes_per_channel_per_hour: number
  readonly pairing_codes_per_customer_per_day: number
  readonly max_webhook_endpoints: number
  readonly created_at: Date
}

const keyPattern = /^Bearer (wiu_[A-Za-z0-9_-]{43})$/

const me = (row: KeyRow) => ({
  customer: {
    id: row.id,
    name: row.name,
    status: row.status,
    plan: {
      max_channels: row.max_channels,
      max_api_keys: row.max_api_keys,
      messages_per_minute: row.messages_per_minute,
      api_requests_per_second: row.api_requests_per_second,
      pairing_codes_per_channel_per_hour: row.pairing_codes_per_channel_per_hour,
      pairing_codes_per_customer_per_day: row.pairing_codes_per_customer_per_day,
      max_webhook_endpoints: row.max_webhook_endpoints
    },
    created_at: row.created_at.toISOString()
  },
  key_id: row.key_id,
  channel_id: row.channel_id
})

const serve = (pool: pg.Pool) =>
  http.createServer({ keepAliveTimeout: 60_000 }, (request, response) => {
    const answer = (status: number, value: unknown) => {
      const text = JSON.stringify(value)
      response.writeHead(status, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text)
      })
      response.end(text)
    }
    if (request.method !== "GET" || request.url !== "/v1/me") return answer(404, { code: "not_found" })
    const key = keyPattern.exec(request.headers.authorization ?? "")?.[1]
    if (key === undefined) return answer(401, { code: "unauthorized" })
    const hash = crypto.createHash("sha256").update(key).digest()
    pool.query<KeyRow>({ ...readKey, values: [hash] }).then(
      ({ rows: [row] }) =>
        row === undefined || row.revoked || row.status !== "active"
          ? answer(401, { code: "unauthorized" })
          : answer(200, me(row)),
      () => answer(500, { code: "internal_error" })
    )
  })

/** The minimal /v1/me server on 127.0.0.1 until the scope closes, with a pool of `connections` of its own. */
export const minimalReadServer = (databaseUrl: string, connections: number) =>
  Effect.gen(function* () {
    const pool = yield* Effect.acquireRelease(
      Effect.sync(() => new pg.Pool({ connectionString: databaseUrl, max: connections })),
      (pool) => Effect.promise(() => pool.end())
    )
    const server = yield* Effect.acquireRelease(
      Effect.callback<http.Server>((resume) => {
        const server = serve(pool)
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.callback<void>((resume) => {
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    )
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
