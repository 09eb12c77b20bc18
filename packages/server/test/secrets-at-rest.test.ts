import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit } from "effect"
import { Migrator, SqlClient } from "effect/sql"
import type { PgClient } from "@effect/sql-pg"
import * as crypto from "node:crypto"
import { AuthStates } from "../src/channels/loginStore.ts"
import { KeyRing, type Place } from "../src/crypto/keyRing.ts"
import { newId } from "../src/db/ids.ts"
import foundation from "../src/db/migrations/0001_foundation.ts"
import channels from "../src/db/migrations/0002_channels.ts"
import { eventSecretPlace } from "../src/events/eventLog.ts"
import { credsType } from "../src/whatsapp/authState.ts"
import { adminOf, newCustomer } from "./support/admin.ts"
import { apiClient, waitForQr, waitForStatus } from "./support/api.ts"
import { sqlFor, testDatabase } from "./support/database.ts"
import { gatewayEnvironment, type RunningGateway, startGateway } from "./support/gateway.ts"
import { request } from "./support/http.ts"
import { waitUntil } from "./support/waits.ts"

const newKey = (id: string) => `${id}:${crypto.randomBytes(32).toString("base64")}`

/** A ciphertext as the key ring wrote them before they were bound to their place: `v1`, no associated data. */
const unboundCiphertext = (entry: string, plaintext: string) => {
  const [id, base64] = entry.split(":") as [string, string]
  const nonce = crypto.randomBytes(12)
  const cipher = crypto.createCipheriv("aes-256-gcm", Buffer.from(base64, "base64"), nonce)
  const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()])
  return `v1.${id}.${Buffer.concat([nonce, cipher.getAuthTag(), body]).toString("base64url")}`
}

/** Every column of the schema that holds ciphertexts, with its table's primary key (the row of a place). */
const encryptedColumnsOf = (sql: PgClient.PgClient) =>
  Effect.map(
    sql<{ table_name: string; column_name: string; key: string }>`
      SELECT c.table_name, c.column_name,
        (SELECT string_agg(k.column_name, ',' ORDER BY k.ordinal_position)
         FROM information_schema.table_constraints t
         JOIN information_schema.key_column_usage k
           ON k.constraint_schema = t.constraint_schema AND k.constraint_name = t.constraint_name
         WHERE t.table_schema = 'public' AND t.table_name = c.table_name
           AND t.constraint_type = 'PRIMARY KEY') AS key
      FROM information_schema.columns c
      WHERE c.table_schema = 'public' AND c.column_name LIKE '%ciphertext%'
      ORDER BY 1, 2`,
    (rows) => rows.map((row) => ({ table: row.table_name, column: row.column_name, key: row.key.split(",") }))
  )

/** Every ciphertext stored in the schema, with its place. */
const storedSecrets = (sql: PgClient.PgClient) =>
  Effect.gen(function* () {
    const secrets: Array<{ readonly place: Place; readonly ciphertext: string }> = []
    for (const { table, column, key } of yield* encryptedColumnsOf(sql)) {
      const rows = yield* sql<Record<string, string>>`
        SELECT ${sql.literal(key.map((name) => `"${name}"::text AS "${name}"`).join(", "))},
          ${sql(column)} AS ciphertext
        FROM ${sql(table)} WHERE ${sql(column)} IS NOT NULL`
      for (const row of rows) {
        secrets.push({
          place: { table, column, row: key.map((name) => row[name]!) },
          ciphertext: row.ciphertext!
        })
      }
    }
    return secrets
  })

/** What every stored secret decrypts to in its place, by place. */
const openedSecrets = (sql: PgClient.PgClient, gateway: RunningGateway) =>
  Effect.gen(function* () {
    const keyRing = Context.get(gateway.services, KeyRing)
    const opened = new Map<string, string>()
    for (const { place, ciphertext } of yield* storedSecrets(sql)) {
      opened.set(JSON.stringify(place), yield* keyRing.decrypt(ciphertext, place))
    }
    return opened
  })

const writeAt = (sql: PgClient.PgClient, place: Place, key: ReadonlyArray<string>, ciphertext: string) =>
  sql`
    UPDATE ${sql(place.table)} SET ${sql(place.column)} = ${ciphertext}
    WHERE ${sql.and(key.map((name, i) => sql`${sql(name)}::text = ${place.row[i]!}`))}`

describe("secrets at rest", () => {
  it.effect(
    "a ciphertext copied into another row does not decrypt there: a stored answer, a WhatsApp login",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const sql = yield* sqlFor(database.url)
        const gateway = yield* startGateway(yield* gatewayEnvironment(database.url))
        const victim = yield* newCustomer(gateway, { name: "Victim" })
        const copier = yield* newCustomer(gateway, { name: "Copier" })

        // the same request under the same Idempotency-Key: the stored answers differ only by their rows
        const headers = { "idempotency-key": "same-request" }
        const secret = yield* victim.client.apiKeys.create({ headers, payload: { name: "copied" } })
        yield* copier.client.apiKeys.create({ headers, payload: { name: "copied" } })
        yield* sql`
          UPDATE idempotency_keys SET response_ciphertext =
            (SELECT response_ciphertext FROM idempotency_keys WHERE api_key_id = ${victim.keyId})
          WHERE api_key_id = ${copier.keyId}`
        const replay = yield* request(gateway.api, "POST", "/v1/api-keys", {
          key: copier.key,
          headers,
          body: { name: "copied" }
        })
        expect(replay.text).not.toContain(secret.key)
        expect(replay.status).toBe(500)
        const [refused, ...more] = gateway.logs.take("ERROR", "request failed")
        expect(more).toEqual([])
        expect(refused!.cause).toMatch(/^DecryptionFailed: /)
        expect(refused!.cause).not.toContain(secret.key)

        const { id: paired } = yield* victim.client.channels.create({ headers: {}, payload: {} })
        yield* victim.client.channels.connect({ params: { id: paired }, payload: { method: "qr" } })
        yield* waitUntil(
          "the channel's connection is open",
          Effect.sync(() => gateway.whatsapp.isOpen(paired))
        )
        yield* gateway.whatsapp.pair(paired, "+15550001111")
        yield* waitForStatus(victim.client, paired, "connected")
        const { id: empty } = yield* copier.client.channels.create({ headers: {}, payload: {} })
        yield* sql`
          INSERT INTO channel_auth_state (channel_id, key_type, key_id, ciphertext)
          SELECT ${empty}, key_type, key_id, ciphertext FROM channel_auth_state WHERE channel_id = ${paired}`
        const authStates = Context.get(gateway.services, AuthStates)
        const login = (channelId: typeof paired) =>
          authStates.forChannel({ channelId, generation: 0 }).read(credsType, ["creds"])
        expect((yield* login(paired)).creds).toContain("15550001111")
        const copied = yield* Effect.exit(login(empty))
        expect(Exit.isFailure(copied)).toBe(true)
        expect(String(copied)).not.toContain("15550001111")
      }).pipe(Effect.scoped),
    60_000
  )

  it.effect(
    "secrets stored before they were bound to their place are bound at start-up, and a rotation moves every encrypted column of the schema to the newest key, in place",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const sql = yield* sqlFor(database.url)
        const k1 = newKey("k1")
        const k2 = newKey("k2")
        const gatewayWith = (keys: string) =>
          Effect.flatMap(
            gatewayEnvironment(database.url, { WHATISUP_MASTER_KEYS: keys, WHATISUP_NODE_ID: "node" }),
            startGateway
          )

        // what an older gateway stored: a login, a QR event, a stored answer, the canary
        const { key, paired, opened } = yield* Effect.scoped(
          Effect.gen(function* () {
            const gateway = yield* gatewayWith(k1)
            const { key, client } = yield* newCustomer(gateway, { name: "Old Timer" })
            const { id: paired } = yield* client.channels.create({ headers: {}, payload: {} })
            yield* client.channels.connect({ params: { id: paired }, payload: { method: "qr" } })
            yield* waitForQr(client, paired)
            yield* gateway.whatsapp.pair(paired, "+15552223333")
            yield* waitForStatus(client, paired, "connected")
            yield* client.channels.create({ headers: { "idempotency-key": "resting" }, payload: {} })
            return { key, paired, opened: yield* openedSecrets(sql, gateway) }
          })
        )
        const stores = new Set(
          [...opened.keys()].map((where) => {
            const place: Place = JSON.parse(where)
            return `${place.table}.${place.column}`
          })
        )
        expect(stores.size).toBeGreaterThanOrEqual(4)

        // ... as it stored them before ciphertexts named their place, with a QR and a pairing code shown
        const columns = yield* encryptedColumnsOf(sql)
        const keyOf = (place: Place) =>
          columns.find((c) => c.table === place.table && c.column === place.column)!.key
        for (const [where, plaintext] of opened) {
          const place: Place = JSON.parse(where)
          yield* writeAt(sql, place, keyOf(place), unboundCiphertext(k1, plaintext))
        }
        const { id: resting } = (yield* sql<{
          id: string
        }>`SELECT id FROM channels WHERE id <> ${paired}`)[0]!
        for (const [column, plaintext] of [
          ["qr_ciphertext", "2@old,noise,identity,adv-secret"],
          ["pairing_code_ciphertext", "OLDCODE1"]
        ] as const) {
          const place: Place = { table: "channels", column, row: [resting] }
          yield* writeAt(sql, place, ["id"], unboundCiphertext(k1, plaintext))
          opened.set(JSON.stringify(place), plaintext)
        }

        yield* Effect.scoped(
          Effect.gen(function* () {
            const gateway = yield* gatewayWith(k1)
            const stored = yield* storedSecrets(sql)
            expect(stored.length).toBe(opened.size)
            for (const { ciphertext } of stored) expect(ciphertext).toMatch(/^v2\.k1\./)
            expect(yield* openedSecrets(sql, gateway)).toEqual(opened)
            // the login still opens: the channel comes back without a new QR
            const client = yield* apiClient(gateway.api, key)
            yield* waitForStatus(client, paired, "connected")
            const qrs = yield* client.events.list({ query: { channel_id: paired, type: "channel.qr" } })
            expect(qrs.data).toHaveLength(1)
          })
        )

        yield* Effect.scoped(
          Effect.gen(function* () {
            const gateway = yield* gatewayWith(`${k1},${k2}`)
            const rotated = yield* (yield* adminOf(gateway)).RotateMasterKey()
            expect(rotated.stores.reduce((sum, s) => sum + s.rewritten, 0)).toBe(opened.size)
            for (const { ciphertext } of yield* storedSecrets(sql)) expect(ciphertext).toMatch(/^v2\.k2\./)
            expect(yield* openedSecrets(sql, gateway)).toEqual(opened)
          })
        )
      }).pipe(Effect.scoped),
    120_000
  )

  it.effect("RotateMasterKey rewrites every column of ciphertexts in the schema", () =>
    Effect.gen(function* () {
      const database = yield* testDatabase
      const sql = yield* sqlFor(database.url)
      const gateway = yield* startGateway(yield* gatewayEnvironment(database.url))
      const rotated = yield* (yield* adminOf(gateway)).RotateMasterKey()
      const everyColumn = (yield* encryptedColumnsOf(sql)).map(({ table, column }) => `${table}.${column}`)
      expect(everyColumn).toEqual(
        expect.arrayContaining([
          "channel_auth_state.ciphertext",
          "channels.pairing_code_ciphertext",
          "channels.qr_ciphertext",
          "events.secret_ciphertext",
          "idempotency_keys.response_ciphertext",
          "key_ring_canary.ciphertext"
        ])
      )
      // a column that rotation does not know would keep its secrets under a key meant to be dropped
      expect(rotated.stores.map((s) => s.store).sort()).toEqual([...everyColumn].sort())
    }).pipe(Effect.scoped)
  )

  it.effect(
    "a QR event lists when the QR expires and keeps the QR encrypted in its row; the migration strips the QRs listed in clear before",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const sql = yield* sqlFor(database.url)
        yield* Migrator.make({})({
          loader: Migrator.fromRecord({ "1_foundation": foundation, "2_channels": channels }),
          table: "whatisup_migrations"
        }).pipe(Effect.provideService(SqlClient.SqlClient, sql))

        // as the previous version kept them: the QR in the event's data, answers stored per customer
        const customerId = newId.customer()
        const channelId = newId.channel()
        const oldEvent = newId.event()
        const oldQr = "2@old-ref,noise-key,identity-key,adv-secret-key"
        yield* sql`
          INSERT INTO customers (id, name, max_channels, max_api_keys, messages_per_minute, api_requests_per_second)
          VALUES (${customerId}, 'Before', 5, 10, 60, 10000)`
        yield* sql`INSERT INTO channels (id, customer_id, event_seq) VALUES (${channelId}, ${customerId}, 1)`
        const expiresAt = "2026-01-01T00:01:00.000Z"
        yield* sql`
          INSERT INTO events (id, customer_id, channel_id, seq, type, data)
          VALUES (${oldEvent}, ${customerId}, ${channelId}, 1, 'channel.qr',
            ${JSON.stringify({ channel_id: channelId, sequence: 1, qr: oldQr, expires_at: expiresAt })}::jsonb)`
        yield* sql`
          INSERT INTO idempotency_keys (customer_id, key, request_hash, response_ciphertext)
          VALUES (${customerId}, 'before', 'hash', 'v1.k1.stale')`

        const gateway = yield* startGateway(yield* gatewayEnvironment(database.url))
        const migrated = yield* sql<{ data: unknown }>`SELECT data FROM events WHERE id = ${oldEvent}`
        expect(migrated[0]!.data).toEqual({ channel_id: channelId, sequence: 1, expires_at: expiresAt })
        expect(yield* sql`SELECT 1 FROM idempotency_keys`).toHaveLength(0)

        const issued = yield* (yield* adminOf(gateway)).IssueApiKey({ customer_id: customerId })
        const client = yield* apiClient(gateway.api, issued.key)
        yield* client.channels.connect({ params: { id: channelId }, payload: { method: "qr" } })
        const qr = yield* waitForQr(client, channelId)
        const listed = yield* request(gateway.api, "GET", "/v1/events?type=channel.qr", { key: issued.key })
        expect(listed.body.data.map((e: { data: unknown }) => e.data)).toEqual([
          { channel_id: channelId, sequence: 2, expires_at: qr.expires_at },
          { channel_id: channelId, sequence: 1, expires_at: expiresAt }
        ])
        expect(listed.text).not.toContain("adv-secret-key")
        expect(listed.text).not.toContain(qr.qr)

        // the webhook that carries the event reads its QR from the row, while it is valid
        const newest = listed.body.data[0].id
        const stored = yield* sql<{ secret_ciphertext: string }>`
          SELECT secret_ciphertext FROM events WHERE id = ${newest}`
        const keyRing = Context.get(gateway.services, KeyRing)
        const secret = yield* keyRing.decrypt(stored[0]!.secret_ciphertext, eventSecretPlace(newest))
        expect(JSON.parse(secret)).toEqual({ qr: qr.qr })
      }).pipe(Effect.scoped),
    60_000
  )
})
