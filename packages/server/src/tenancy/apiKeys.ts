import {
  type ApiKey,
  type ApiKeyCreated,
  type ApiKeyId,
  type AuditActor,
  type ChannelId,
  type CustomerId
} from "@whatisup/domain"
import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { Audit, type AuditEntry } from "../audit/audit.ts"
import { newId } from "../db/ids.ts"
import { type InvalidCursor, listPage, type Page, type PageRequest } from "../db/pagination.ts"
import { decodeRows, transaction } from "../db/transaction.ts"
import { Authentication } from "./authentication.ts"
import { credentialsChangedChannel, hashKey, keyChanged, newKeyPlaintext } from "./credentials.ts"
import {
  ApiKeyNotFound,
  BindingChannelNotFound,
  CreatedKeyRevoked,
  type CustomerNotFound,
  type PlanLimitExceeded
} from "./errors.ts"
import { checkPlanLimit } from "./planLimits.ts"
import { apiKeyColumns, ApiKeyRow, renderApiKey } from "./rows.ts"

/**
 * Inside the transaction that deletes a channel: revokes every live key bound to it, each with its
 * audit row; every process forgets them when the transaction commits (NOTIFY). Says which were revoked.
 */
export const revokeKeysBoundTo = (
  sql: SqlClient.SqlClient,
  record: (entry: AuditEntry) => Effect.Effect<void>,
  options: { readonly customerId: CustomerId; readonly channelId: ChannelId; readonly actor: AuditActor }
) =>
  Effect.gen(function* () {
    const { customerId, channelId, actor } = options
    const revoked = yield* sql`
      UPDATE api_keys SET revoked_at = now()
      WHERE customer_id = ${customerId} AND channel_id = ${channelId} AND revoked_at IS NULL
      RETURNING id`.pipe(decodeRows(Schema.Struct({ id: ApiKeyRow.fields.id })))
    for (const { id } of revoked) {
      yield* record({
        customerId,
        actor,
        action: "api_key.revoked",
        resourceType: "api_key",
        resourceId: id,
        data: { reason: "channel_deleted", channel_id: channelId }
      })
      yield* sql`SELECT pg_notify(${credentialsChangedChannel}, ${keyChanged(id)})`.pipe(Effect.orDie)
    }
    return revoked.map(({ id }) => id)
  })

export class ApiKeys extends Context.Service<
  ApiKeys,
  {
    readonly create: (options: {
      readonly customerId: CustomerId
      readonly name: string | null
      readonly channelId: ChannelId | null
      readonly actor: AuditActor
    }) => Effect.Effect<ApiKeyCreated, PlanLimitExceeded | CustomerNotFound | BindingChannelNotFound>
    readonly list: (
      options: PageRequest & { readonly customerId: CustomerId }
    ) => Effect.Effect<Page<ApiKey>, InvalidCursor>
    readonly revoke: (options: {
      readonly customerId: CustomerId
      readonly keyId: ApiKeyId
      readonly actor: AuditActor
    }) => Effect.Effect<ApiKey, ApiKeyNotFound>
    /** Before a creation is replayed: a key revoked since is not shown again. */
    readonly replayable: (created: ApiKeyCreated) => Effect.Effect<void, CreatedKeyRevoked>
  }
>()("whatisup/ApiKeys") {}

export const layerApiKeys = Layer.effect(
  ApiKeys,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* Audit
    const authentication = yield* Authentication
    const inTransaction = transaction(sql)
    const columns = sql.literal(apiKeyColumns)

    return ApiKeys.of({
      create: Effect.fn("ApiKeys.create")(function* ({ customerId, name, channelId, actor }) {
        return yield* inTransaction(
          Effect.gen(function* () {
            yield* checkPlanLimit(
              sql,
              customerId,
              "max_api_keys",
              sql`SELECT count(*)::int AS n FROM api_keys WHERE customer_id = ${customerId} AND revoked_at IS NULL`
            )
            if (channelId !== null) {
              const channels = yield* sql`
                SELECT 1 FROM channels
                WHERE id = ${channelId} AND customer_id = ${customerId} AND status <> 'deleted'`
              if (channels.length === 0) return yield* new BindingChannelNotFound({ customerId, channelId })
            }
            const plaintext = newKeyPlaintext()
            const id = newId.apiKey()
            const rows = yield* sql`
              INSERT INTO api_keys (id, customer_id, name, key_hash, prefix, last_four, channel_id)
              VALUES (${id}, ${customerId}, ${name}, ${hashKey(plaintext)},
                ${plaintext.slice(0, 8)}, ${plaintext.slice(-4)}, ${channelId})
              RETURNING ${columns}`.pipe(decodeRows(ApiKeyRow))
            yield* audit.record({
              customerId,
              actor,
              action: "api_key.created",
              resourceType: "api_key",
              resourceId: id,
              data: { name, channel_id: channelId }
            })
            return { ...renderApiKey(rows[0]!), key: plaintext }
          })
        )
      }),

      revoke: Effect.fn("ApiKeys.revoke")(function* ({ customerId, keyId, actor }) {
        const { key, changed } = yield* inTransaction(
          Effect.gen(function* () {
            const revoked = yield* sql`
              UPDATE api_keys SET revoked_at = now()
              WHERE id = ${keyId} AND customer_id = ${customerId} AND revoked_at IS NULL
              RETURNING ${columns}`.pipe(decodeRows(ApiKeyRow))
            const row = revoked[0]
            if (row === undefined) {
              // revoking twice answers the revoked key again, without a second audit row
              const existing = yield* sql`
                SELECT ${columns} FROM api_keys WHERE id = ${keyId} AND customer_id = ${customerId}`.pipe(
                decodeRows(ApiKeyRow)
              )
              if (existing[0] === undefined) return yield* new ApiKeyNotFound({ keyId })
              return { key: renderApiKey(existing[0]), changed: false }
            }
            yield* audit.record({
              customerId,
              actor,
              action: "api_key.revoked",
              resourceType: "api_key",
              resourceId: row.id
            })
            yield* sql`SELECT pg_notify(${credentialsChangedChannel}, ${keyChanged(row.id)})`
            return { key: renderApiKey(row), changed: true }
          })
        )
        // this key fails at once here; other processes hear it from the commit's NOTIFY
        if (changed) yield* authentication.forget(keyChanged(key.id))
        return key
      }),

      replayable: Effect.fn("ApiKeys.replayable")(function* (created) {
        const revoked = yield* sql<{ id: string }>`
          SELECT id FROM api_keys WHERE id = ${created.id} AND revoked_at IS NOT NULL`.pipe(Effect.orDie)
        if (revoked.length > 0) return yield* new CreatedKeyRevoked({ keyId: created.id })
      }),

      list: Effect.fn("ApiKeys.list")(function* ({ customerId, ...page }) {
        const rows = yield* listPage(sql, page, "key", (window) =>
          sql`SELECT ${columns} FROM api_keys WHERE customer_id = ${customerId} ${window}`.pipe(
            decodeRows(ApiKeyRow)
          )
        )
        return { data: rows.data.map(renderApiKey), next_cursor: rows.next_cursor }
      })
    })
  })
)
