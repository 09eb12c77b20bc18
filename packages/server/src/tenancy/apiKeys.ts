import {
  type ApiKey,
  type ApiKeyCreated,
  type AuditActor,
  InvalidRequest,
  NotFound,
  PlanLimitReached
} from "@whatisup/domain"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer } from "effect"
import { Audit } from "../audit/audit.ts"
import { decodeCursor, defaultPageSize, toPage } from "../db/pagination.ts"
import { newId } from "../db/ids.ts"
import { Authentication } from "./authentication.ts"
import { credentialsChangedChannel, hashKey, newKeyPlaintext } from "./credentials.ts"
import { type ApiKeyRow, renderApiKey } from "./rows.ts"

const keyColumns = "id, name, prefix, last_four, channel_id, created_at, last_used_at, revoked_at"

export class ApiKeys extends Context.Service<
  ApiKeys,
  {
    readonly create: (options: {
      readonly customerId: string
      readonly name: string | null
      readonly channelId: string | null
      readonly actor: AuditActor
    }) => Effect.Effect<ApiKeyCreated, PlanLimitReached | NotFound | InvalidRequest>
    readonly list: (options: {
      readonly customerId: string
      readonly limit?: number | undefined
      readonly cursor?: string | undefined
    }) => Effect.Effect<{ data: Array<ApiKey>; next_cursor: string | null }, InvalidRequest>
    readonly revoke: (options: {
      readonly customerId: string
      readonly keyId: string
      readonly actor: AuditActor
    }) => Effect.Effect<ApiKey, NotFound>
  }
>()("whatisup/ApiKeys") {}

export const layerApiKeys = Layer.effect(
  ApiKeys,
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const audit = yield* Audit
    const authentication = yield* Authentication

    const create = Effect.fn("ApiKeys.create")(
      function* (options: {
        readonly customerId: string
        readonly name: string | null
        readonly channelId: string | null
        readonly actor: AuditActor
      }) {
        // the customer row lock serialises concurrent creates against the plan's limit
        const customers = yield* sql<{ max_api_keys: number }>`
        SELECT max_api_keys FROM customers WHERE id = ${options.customerId} FOR UPDATE`
        const customer = customers[0]
        if (customer === undefined) return yield* new NotFound({ detail: "No such customer" })
        const counted = yield* sql<{ n: number }>`
        SELECT count(*)::int AS n FROM api_keys WHERE customer_id = ${options.customerId} AND revoked_at IS NULL`
        if ((counted[0]?.n ?? 0) >= customer.max_api_keys) {
          return yield* new PlanLimitReached({
            detail: `The plan allows ${customer.max_api_keys} active API keys`,
            limit: "max_api_keys",
            max: customer.max_api_keys
          })
        }
        if (options.channelId !== null) {
          const channels = yield* sql`
          SELECT 1 FROM channels
          WHERE id = ${options.channelId} AND customer_id = ${options.customerId} AND status <> 'deleted'`
          if (channels.length === 0) {
            return yield* new InvalidRequest({
              detail: "The key cannot be bound to that channel",
              errors: [{ path: "body.channel_id", message: `no such channel: ${options.channelId}` }]
            })
          }
        }
        const plaintext = newKeyPlaintext()
        const id = newId("apiKey")
        const rows = yield* sql<ApiKeyRow>`
        INSERT INTO api_keys (id, customer_id, name, key_hash, prefix, last_four, channel_id)
        VALUES (${id}, ${options.customerId}, ${options.name}, ${hashKey(plaintext)},
          ${plaintext.slice(0, 8)}, ${plaintext.slice(-4)}, ${options.channelId})
        RETURNING ${sql.literal(keyColumns)}`
        yield* audit.record({
          customerId: options.customerId,
          actor: options.actor,
          action: "api_key.created",
          resourceType: "api_key",
          resourceId: id,
          data: { name: options.name, channel_id: options.channelId }
        })
        return { ...renderApiKey(rows[0]!), key: plaintext }
      },
      (effect) => sql.withTransaction(effect).pipe(Effect.catchTag("SqlError", Effect.die))
    )

    const revoke = Effect.fn("ApiKeys.revoke")(
      function* (options: {
        readonly customerId: string
        readonly keyId: string
        readonly actor: AuditActor
      }) {
        const revoked = yield* sql<ApiKeyRow>`
        UPDATE api_keys SET revoked_at = now()
        WHERE id = ${options.keyId} AND customer_id = ${options.customerId} AND revoked_at IS NULL
        RETURNING ${sql.literal(keyColumns)}`
        const row = revoked[0]
        if (row === undefined) {
          // revoking twice answers the revoked key again, without a second audit row
          const existing = yield* sql<ApiKeyRow>`
            SELECT ${sql.literal(keyColumns)} FROM api_keys
            WHERE id = ${options.keyId} AND customer_id = ${options.customerId}`
          if (existing[0] === undefined) return yield* new NotFound({ detail: "No such API key" })
          return renderApiKey(existing[0])
        }
        yield* audit.record({
          customerId: options.customerId,
          actor: options.actor,
          action: "api_key.revoked",
          resourceType: "api_key",
          resourceId: row.id
        })
        yield* sql`SELECT pg_notify(${credentialsChangedChannel}, ${`key:${row.id}`})`
        return renderApiKey(row)
      },
      (effect) =>
        sql
          .withTransaction(effect)
          .pipe(Effect.catchTag("SqlError", Effect.die), Effect.tap(authentication.forget))
    )

    return ApiKeys.of({
      create,
      revoke,
      list: ({ customerId, limit = defaultPageSize, cursor }) =>
        Effect.gen(function* () {
          const after = yield* decodeCursor(cursor, "key")
          const rows = yield* sql<ApiKeyRow>`
            SELECT ${sql.literal(keyColumns)} FROM api_keys
            WHERE customer_id = ${customerId} ${after === null ? sql`` : sql`AND id < ${after}`}
            ORDER BY id DESC LIMIT ${limit + 1}`.pipe(Effect.orDie)
          return toPage(rows, limit, renderApiKey)
        })
    })
  })
)
