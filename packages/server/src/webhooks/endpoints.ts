import {
  type AuditActor,
  type ChannelId,
  type CreateWebhookEndpoint,
  type CustomerId,
  type EventType,
  type UpdateWebhookEndpoint,
  type WebhookEndpoint,
  WebhookEndpointId,
  type WebhookEndpointWithSecret
} from "@whatisup/domain"
import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient, type Statement } from "effect/sql"
import { Audit } from "../audit/audit.ts"
import { type EncryptedColumn, KeyRing, placeIn } from "../crypto/keyRing.ts"
import { newId } from "../db/ids.ts"
import { type InvalidCursor, listPage, type Page, type PageRequest } from "../db/pagination.ts"
import { decodeRows, transaction } from "../db/transaction.ts"
import type { PlanLimitExceeded } from "../tenancy/errors.ts"
import { checkPlanLimit } from "../tenancy/planLimits.ts"
import {
  CreatedSecretReplaced,
  EndpointChannelNotFound,
  WebhookEndpointNotFound,
  WebhookUrlRefused
} from "./errors.ts"
import { WebhookSigner } from "./signer.ts"
import { refusalOf, SsrfGuard } from "./ssrfGuard.ts"

/** Whose endpoints: a customer's, and for a channel-bound key only the bound channel's. */
export interface EndpointAccess {
  readonly customerId: CustomerId
  readonly onlyChannel: ChannelId | null
}

export const secretColumn: EncryptedColumn = {
  table: "webhook_endpoints",
  key: ["id"],
  column: "secret_ciphertext"
}
export const previousSecretColumn: EncryptedColumn = { ...secretColumn, column: "previous_secret_ciphertext" }

export const EndpointRow = Schema.Struct({
  id: WebhookEndpointId,
  customer_id: Schema.String,
  channel_id: Schema.NullOr(Schema.String),
  url: Schema.String,
  description: Schema.NullOr(Schema.String),
  event_types: Schema.Array(Schema.String),
  enabled: Schema.Boolean,
  disabled_reason: Schema.NullOr(Schema.Literals(["disabled_by_request", "endpoint_gone", "failing"])),
  secret_ciphertext: Schema.NullOr(Schema.String),
  previous_secret_expires_at: Schema.NullOr(Schema.Date),
  failing_since: Schema.NullOr(Schema.Date),
  created_at: Schema.Date,
  updated_at: Schema.Date
})
export type EndpointRow = typeof EndpointRow.Type

const endpointColumns = `id, customer_id, channel_id, url, description, event_types, enabled, disabled_reason,
  secret_ciphertext, previous_secret_expires_at, failing_since, created_at, updated_at`

export const renderEndpoint = (row: EndpointRow): WebhookEndpoint => ({
  id: row.id,
  channel_id: row.channel_id as ChannelId | null,
  url: row.url,
  description: row.description,
  event_types: row.event_types as ReadonlyArray<EventType>,
  status: row.enabled ? "enabled" : "disabled",
  disabled_reason: row.enabled ? null : row.disabled_reason,
  failing_since: row.failing_since?.toISOString() ?? null,
  previous_secret_expires_at:
    row.previous_secret_expires_at !== null && row.previous_secret_expires_at.getTime() > Date.now()
      ? row.previous_secret_expires_at.toISOString()
      : null,
  created_at: row.created_at.toISOString(),
  updated_at: row.updated_at.toISOString()
})

/** The customer's webhook endpoints: where events are posted, and the secrets that sign them. */
export class WebhookEndpoints extends Context.Service<
  WebhookEndpoints,
  {
    /** Refuses a URL the gateway will not post to; called before `create`, outside any transaction (it resolves names). */
    readonly vet: (url: string) => Effect.Effect<void, WebhookUrlRefused>
    /** `channelId` null: an endpoint for every channel of the customer, present and future. Its URL was vetted. */
    readonly create: (
      access: EndpointAccess,
      channelId: ChannelId | null,
      request: CreateWebhookEndpoint,
      actor: AuditActor
    ) => Effect.Effect<WebhookEndpointWithSecret, EndpointChannelNotFound | PlanLimitExceeded>
    /** `channelId` given: that channel's endpoints only (not the customer's endpoints for every channel). */
    readonly list: (
      access: EndpointAccess,
      filter: { readonly channelId?: ChannelId | undefined } & PageRequest
    ) => Effect.Effect<Page<WebhookEndpoint>, InvalidCursor | EndpointChannelNotFound>
    readonly get: (
      access: EndpointAccess,
      id: WebhookEndpointId
    ) => Effect.Effect<WebhookEndpoint, WebhookEndpointNotFound>
    readonly update: (
      access: EndpointAccess,
      id: WebhookEndpointId,
      patch: UpdateWebhookEndpoint,
      actor: AuditActor
    ) => Effect.Effect<WebhookEndpoint, WebhookEndpointNotFound | WebhookUrlRefused>
    /** Deletes the endpoint; what was still pending for it fails. */
    readonly remove: (
      access: EndpointAccess,
      id: WebhookEndpointId,
      actor: AuditActor
    ) => Effect.Effect<WebhookEndpoint, WebhookEndpointNotFound>
    /** A new secret; the previous one keeps signing beside it for `graceSeconds`. */
    readonly rotateSecret: (
      access: EndpointAccess,
      id: WebhookEndpointId,
      graceSeconds: number,
      actor: AuditActor
    ) => Effect.Effect<WebhookEndpointWithSecret, WebhookEndpointNotFound>
    /** For a replayed create: the secret it showed must still be the endpoint's. */
    readonly stillSigns: (answer: WebhookEndpointWithSecret) => Effect.Effect<void, CreatedSecretReplaced>
  }
>()("whatisup/WebhookEndpoints") {}

/** Deliveries still waiting for an endpoint that will not be posted to again fail, so recover can find them. */
export const failPending = (sql: SqlClient.SqlClient, endpointIds: ReadonlyArray<string>) =>
  sql`
    UPDATE deliveries SET status = 'failed', next_attempt_at = NULL
    WHERE endpoint_id = ANY(${endpointIds}::text[]) AND status = 'pending'`

/** In the transaction deleting a channel: its endpoints go with it, each audited. */
export const removeChannelEndpoints = (
  sql: SqlClient.SqlClient,
  audit: Audit["Service"],
  channelId: ChannelId,
  actor: AuditActor
) =>
  Effect.gen(function* () {
    const removed = yield* sql<{ id: string; customer_id: CustomerId }>`
      UPDATE webhook_endpoints SET deleted_at = now(), enabled = false, updated_at = now(),
        secret_ciphertext = NULL, previous_secret_ciphertext = NULL
      WHERE channel_id = ${channelId} AND deleted_at IS NULL
      RETURNING id, customer_id`.pipe(Effect.orDie)
    if (removed.length === 0) return
    yield* failPending(
      sql,
      removed.map((row) => row.id)
    ).pipe(Effect.orDie)
    for (const row of removed) {
      yield* audit.record({
        customerId: row.customer_id,
        actor,
        action: "webhook_endpoint.deleted",
        resourceType: "webhook_endpoint",
        resourceId: row.id,
        data: { reason: "channel_deleted" }
      })
    }
  })

export const layerWebhookEndpoints = Layer.effect(
  WebhookEndpoints,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* Audit
    const keyRing = yield* KeyRing
    const guard = yield* SsrfGuard
    const columns = sql.literal(endpointColumns)
    const inTransaction = transaction(sql)
    yield* keyRing.register(secretColumn)
    yield* keyRing.register(previousSecretColumn)

    const visible = (access: EndpointAccess) =>
      sql`customer_id = ${access.customerId} AND deleted_at IS NULL
        ${access.onlyChannel === null ? sql`` : sql`AND channel_id = ${access.onlyChannel}`}`

    const found = (access: EndpointAccess, id: WebhookEndpointId, lock: Statement.Fragment) =>
      Effect.flatMap(
        sql`SELECT ${columns} FROM webhook_endpoints WHERE id = ${id} AND ${visible(access)} ${lock}`.pipe(
          decodeRows(EndpointRow)
        ),
        (rows) =>
          rows[0] === undefined
            ? Effect.fail(new WebhookEndpointNotFound({ endpointId: id }))
            : Effect.succeed(rows[0])
      )

    const vet = (url: string) =>
      guard.vet(url).pipe(Effect.mapError((refused) => new WebhookUrlRefused(refusalOf(refused))))

    const channelVisible = (access: EndpointAccess, channelId: ChannelId) =>
      Effect.gen(function* () {
        const rows = yield* sql`
          SELECT id FROM channels
          WHERE id = ${channelId} AND customer_id = ${access.customerId} AND status <> 'deleted'
            ${access.onlyChannel === null ? sql`` : sql`AND id = ${access.onlyChannel}`}
          FOR SHARE`.pipe(Effect.orDie)
        if (rows.length === 0) return yield* new EndpointChannelNotFound({ channelId })
      })

    const record = (
      access: EndpointAccess,
      actor: AuditActor,
      action: string,
      id: WebhookEndpointId,
      data: Record<string, unknown>
    ) =>
      audit.record({
        customerId: access.customerId,
        actor,
        action,
        resourceType: "webhook_endpoint",
        resourceId: id,
        data
      })

    const withSecret = (row: EndpointRow, secret: string): WebhookEndpointWithSecret => ({
      ...renderEndpoint(row),
      secret
    })

    return WebhookEndpoints.of({
      vet: (url) => Effect.asVoid(vet(url)),
      create: Effect.fn("WebhookEndpoints.create")(function* (access, channelId, request, actor) {
        return yield* inTransaction(
          Effect.gen(function* () {
            yield* checkPlanLimit(
              sql,
              access.customerId,
              "max_webhook_endpoints",
              sql`SELECT count(*)::int AS n FROM webhook_endpoints
                WHERE customer_id = ${access.customerId} AND deleted_at IS NULL`
            ).pipe(Effect.catchTag("CustomerNotFound", Effect.die))
            if (channelId !== null) yield* channelVisible(access, channelId)
            const id = newId.webhookEndpoint()
            const secret = WebhookSigner.newSecret()
            const enabled = request.enabled ?? true
            const rows = yield* sql`
              INSERT INTO webhook_endpoints
                (id, customer_id, channel_id, url, description, event_types, enabled, disabled_reason,
                  secret_ciphertext)
              VALUES (${id}, ${access.customerId}, ${channelId}, ${request.url}, ${request.description ?? null},
                ${request.event_types ?? []}::text[], ${enabled}, ${enabled ? null : "disabled_by_request"},
                ${keyRing.encrypt(secret, placeIn(secretColumn, [id]))})
              RETURNING ${columns}`.pipe(decodeRows(EndpointRow))
            yield* record(access, actor, "webhook_endpoint.created", id, {
              channel_id: channelId,
              url: request.url,
              event_types: request.event_types ?? [],
              enabled
            })
            return withSecret(rows[0]!, secret)
          })
        )
      }),
      list: Effect.fn("WebhookEndpoints.list")(function* (access, { channelId, ...page }) {
        if (channelId !== undefined) yield* inTransaction(channelVisible(access, channelId))
        const rows = yield* listPage(sql, page, "wh", (window) =>
          sql`
            SELECT ${columns} FROM webhook_endpoints
            WHERE ${visible(access)}
              ${channelId === undefined ? sql`` : sql`AND channel_id = ${channelId}`}
              ${window}`.pipe(decodeRows(EndpointRow))
        )
        return { data: rows.data.map(renderEndpoint), next_cursor: rows.next_cursor }
      }),
      get: Effect.fn("WebhookEndpoints.get")(function* (access, id) {
        return renderEndpoint(yield* found(access, id, sql``))
      }),
      update: Effect.fn("WebhookEndpoints.update")(function* (access, id, patch, actor) {
        if (patch.url !== undefined) yield* vet(patch.url)
        return yield* inTransaction(
          Effect.gen(function* () {
            const before = yield* found(access, id, sql`FOR UPDATE`)
            const enabling = patch.enabled === true && !before.enabled
            const disabling = patch.enabled === false && before.enabled
            const rows = yield* sql`
              UPDATE webhook_endpoints SET
                url = ${patch.url ?? before.url},
                description = ${patch.description === undefined ? before.description : patch.description},
                event_types = ${patch.event_types ?? before.event_types}::text[],
                enabled = ${patch.enabled ?? before.enabled},
                disabled_reason = ${
                  enabling ? null : disabling ? "disabled_by_request" : before.disabled_reason
                },
                failing_since = ${enabling || (patch.url !== undefined && patch.url !== before.url) ? null : before.failing_since},
                updated_at = now()
              WHERE id = ${id} RETURNING ${columns}`.pipe(decodeRows(EndpointRow))
            if (disabling) yield* failPending(sql, [id]).pipe(Effect.orDie)
            yield* record(access, actor, "webhook_endpoint.updated", id, { ...patch })
            return renderEndpoint(rows[0]!)
          })
        )
      }),
      remove: Effect.fn("WebhookEndpoints.remove")(function* (access, id, actor) {
        return yield* inTransaction(
          Effect.gen(function* () {
            yield* found(access, id, sql`FOR UPDATE`)
            const rows = yield* sql`
              UPDATE webhook_endpoints SET deleted_at = now(), enabled = false, updated_at = now(),
                secret_ciphertext = NULL, previous_secret_ciphertext = NULL
              WHERE id = ${id} RETURNING ${columns}`.pipe(decodeRows(EndpointRow))
            yield* failPending(sql, [id]).pipe(Effect.orDie)
            yield* record(access, actor, "webhook_endpoint.deleted", id, {})
            return renderEndpoint(rows[0]!)
          })
        )
      }),
      rotateSecret: Effect.fn("WebhookEndpoints.rotateSecret")(function* (access, id, graceSeconds, actor) {
        return yield* inTransaction(
          Effect.gen(function* () {
            const before = yield* found(access, id, sql`FOR UPDATE`)
            const current = yield* keyRing
              .decrypt(before.secret_ciphertext!, placeIn(secretColumn, [id]))
              .pipe(Effect.orDie)
            const secret = WebhookSigner.newSecret()
            const rows = yield* sql`
              UPDATE webhook_endpoints SET
                secret_ciphertext = ${keyRing.encrypt(secret, placeIn(secretColumn, [id]))},
                previous_secret_ciphertext = ${
                  graceSeconds === 0 ? null : keyRing.encrypt(current, placeIn(previousSecretColumn, [id]))
                },
                previous_secret_expires_at = ${
                  graceSeconds === 0 ? null : sql`now() + make_interval(secs => ${graceSeconds})`
                },
                updated_at = now()
              WHERE id = ${id} RETURNING ${columns}`.pipe(decodeRows(EndpointRow))
            yield* record(access, actor, "webhook_endpoint.secret_rotated", id, {
              grace_period_seconds: graceSeconds
            })
            return withSecret(rows[0]!, secret)
          })
        )
      }),
      stillSigns: Effect.fn("WebhookEndpoints.stillSigns")(function* (answer) {
        const rows = yield* sql`
          SELECT ${columns} FROM webhook_endpoints WHERE id = ${answer.id} AND deleted_at IS NULL`.pipe(
          decodeRows(EndpointRow)
        )
        const row = rows[0]
        const current =
          row?.secret_ciphertext == null
            ? undefined
            : yield* keyRing
                .decrypt(row.secret_ciphertext, placeIn(secretColumn, [row.id]))
                .pipe(Effect.orDie)
        if (current !== answer.secret) return yield* new CreatedSecretReplaced({ endpointId: answer.id })
      })
    })
  })
)
