import {
  AttemptErrorType,
  type AuditActor,
  type CustomerId,
  type Delivery,
  type DeliveryAttempt,
  DeliveryId,
  type DeliveryStatus,
  DeliveryStatus as DeliveryStatusSchema,
  type DeliveryWithAttempts,
  EventId,
  EventType,
  type WebhookEndpointId,
  WebhookEndpointId as WebhookEndpointIdSchema
} from "@whatisup/domain"
import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { Audit } from "../audit/audit.ts"
import { type InvalidCursor, listPage, type Page, type PageRequest } from "../db/pagination.ts"
import { decodeRows, transaction } from "../db/transaction.ts"
import { EventLog } from "../events/eventLog.ts"
import type { EndpointAccess } from "./endpoints.ts"
import {
  DeliveryInFlight,
  DeliveryNotFound,
  WebhookEndpointDisabled,
  WebhookEndpointNotFound
} from "./errors.ts"
import { deliveriesDueChannel } from "../events/deliveries.ts"

const DeliveryRow = Schema.Struct({
  id: DeliveryId,
  endpoint_id: WebhookEndpointIdSchema,
  event_id: EventId,
  event_type: EventType,
  status: DeliveryStatusSchema,
  attempts: Schema.Number,
  next_attempt_at: Schema.NullOr(Schema.Date),
  last_attempt_at: Schema.NullOr(Schema.Date),
  created_at: Schema.Date
})
type DeliveryRow = typeof DeliveryRow.Type

const AttemptRow = Schema.Struct({
  attempt: Schema.Number,
  attempted_at: Schema.Date,
  duration_ms: Schema.Number,
  status_code: Schema.NullOr(Schema.Number),
  error_type: Schema.NullOr(AttemptErrorType),
  error_detail: Schema.NullOr(Schema.String),
  response_excerpt: Schema.NullOr(Schema.String)
})

const deliveryColumns = `d.id, d.endpoint_id, d.event_id, d.event_type, d.status, d.attempts, d.next_attempt_at,
  d.last_attempt_at, d.created_at`

const renderDelivery = (row: DeliveryRow): Delivery => ({
  id: row.id,
  endpoint_id: row.endpoint_id,
  event_id: row.event_id,
  event_type: row.event_type,
  status: row.status,
  attempts: row.attempts,
  next_attempt_at: row.status === "pending" ? (row.next_attempt_at?.toISOString() ?? null) : null,
  last_attempt_at: row.last_attempt_at?.toISOString() ?? null,
  created_at: row.created_at.toISOString()
})

const renderAttempt = (row: typeof AttemptRow.Type): DeliveryAttempt => ({
  attempt: row.attempt,
  attempted_at: row.attempted_at.toISOString(),
  duration_ms: row.duration_ms,
  status_code: row.status_code,
  error_type: row.error_type,
  error_detail: row.error_detail,
  response: row.response_excerpt
})

export interface DeliveryFilter {
  readonly status?: DeliveryStatus | undefined
  readonly eventType?: EventType | undefined
  readonly since?: string | undefined
  readonly until?: string | undefined
}

/** What customers see of deliveries and attempts, and what they may ask again. */
export class DeliveryLog extends Context.Service<
  DeliveryLog,
  {
    readonly list: (
      access: EndpointAccess,
      endpointId: WebhookEndpointId,
      filter: DeliveryFilter & PageRequest
    ) => Effect.Effect<Page<Delivery>, InvalidCursor | WebhookEndpointNotFound>
    readonly get: (
      access: EndpointAccess,
      id: DeliveryId
    ) => Effect.Effect<DeliveryWithAttempts, DeliveryNotFound>
    /** Queued again, due at once, with a fresh retry schedule; its earlier attempts stay in its log. */
    readonly redeliver: (
      access: EndpointAccess,
      id: DeliveryId,
      actor: AuditActor
    ) => Effect.Effect<Delivery, DeliveryNotFound | WebhookEndpointDisabled | DeliveryInFlight>
    /** Every failed delivery to the endpoint created since `since`, queued again. */
    readonly recover: (
      access: EndpointAccess,
      endpointId: WebhookEndpointId,
      since: string,
      actor: AuditActor
    ) => Effect.Effect<number, WebhookEndpointNotFound | WebhookEndpointDisabled>
    /** A webhook.test event, posted to this endpoint only. */
    readonly test: (
      access: EndpointAccess,
      endpointId: WebhookEndpointId,
      actor: AuditActor
    ) => Effect.Effect<Delivery, WebhookEndpointNotFound | WebhookEndpointDisabled>
    /** For the operator: a customer's deliveries, newest first. */
    readonly listForOperator: (
      customerId: CustomerId,
      filter: DeliveryFilter & { readonly limit: number }
    ) => Effect.Effect<ReadonlyArray<Delivery>>
  }
>()("whatisup/DeliveryLog") {}

export const layerDeliveryLog = Layer.effect(
  DeliveryLog,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* Audit
    const events = yield* EventLog
    const columns = sql.literal(deliveryColumns)
    const inTransaction = transaction(sql)

    const visibleEndpoint = (access: EndpointAccess) =>
      sql`w.customer_id = ${access.customerId} AND w.deleted_at IS NULL
        ${access.onlyChannel === null ? sql`` : sql`AND w.channel_id = ${access.onlyChannel}`}`

    const endpoint = (access: EndpointAccess, id: WebhookEndpointId, lock: boolean) =>
      Effect.flatMap(
        sql<{ id: string; enabled: boolean; channel_id: string | null }>`
          SELECT w.id, w.enabled, w.channel_id FROM webhook_endpoints w
          WHERE w.id = ${id} AND ${visibleEndpoint(access)} ${lock ? sql`FOR SHARE` : sql``}`.pipe(
          Effect.orDie
        ),
        (rows) =>
          rows[0] === undefined
            ? Effect.fail(new WebhookEndpointNotFound({ endpointId: id }))
            : Effect.succeed(rows[0])
      )

    const filtered = (filter: DeliveryFilter) =>
      sql`${filter.status === undefined ? sql`` : sql`AND d.status = ${filter.status}`}
        ${filter.eventType === undefined ? sql`` : sql`AND d.event_type = ${filter.eventType}`}
        ${filter.since === undefined ? sql`` : sql`AND d.created_at >= ${new Date(filter.since)}`}
        ${filter.until === undefined ? sql`` : sql`AND d.created_at < ${new Date(filter.until)}`}`

    const requeue = sql`
      status = 'pending', next_attempt_at = now(), scheduled_attempts = 0, claimed_by = NULL, claimed_until = NULL`

    const record = (access: EndpointAccess, actor: AuditActor, action: string, id: string, data: object) =>
      audit.record({
        customerId: access.customerId,
        actor,
        action,
        resourceType: action.startsWith("delivery") ? "delivery" : "webhook_endpoint",
        resourceId: id,
        data: { ...data }
      })

    return DeliveryLog.of({
      list: Effect.fn("DeliveryLog.list")(function* (
        access,
        endpointId,
        { status, eventType, since, until, ...page }
      ) {
        yield* endpoint(access, endpointId, false)
        const rows = yield* listPage(sql, page, "dlv", (window) =>
          sql`
            SELECT ${columns} FROM deliveries d
            WHERE d.endpoint_id = ${endpointId} AND d.customer_id = ${access.customerId}
              ${filtered({ status, eventType, since, until })}
              ${window}`.pipe(decodeRows(DeliveryRow))
        )
        return { data: rows.data.map(renderDelivery), next_cursor: rows.next_cursor }
      }),
      get: Effect.fn("DeliveryLog.get")(function* (access, id) {
        // the delivery and its attempts as of one moment: an attempt recorded in between would show
        // beside the state the delivery had before it
        return yield* inTransaction(
          Effect.gen(function* () {
            yield* sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`.pipe(Effect.orDie)
            const rows = yield* sql`
              SELECT ${columns} FROM deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
              WHERE d.id = ${id} AND ${visibleEndpoint(access)}`.pipe(decodeRows(DeliveryRow))
            if (rows[0] === undefined) return yield* new DeliveryNotFound({ deliveryId: id })
            const attempts = yield* sql`
              SELECT attempt, attempted_at, duration_ms, status_code, error_type, error_detail, response_excerpt
              FROM delivery_attempts WHERE delivery_id = ${id} ORDER BY attempt`.pipe(decodeRows(AttemptRow))
            return { ...renderDelivery(rows[0]), attempt_log: attempts.map(renderAttempt) }
          })
        )
      }),
      redeliver: Effect.fn("DeliveryLog.redeliver")(function* (access, id, actor) {
        return yield* inTransaction(
          Effect.gen(function* () {
            const rows = yield* sql<{ endpoint_id: WebhookEndpointId; enabled: boolean; in_flight: boolean }>`
              SELECT d.endpoint_id, w.enabled, coalesce(d.claimed_until > now(), false) AS in_flight
              FROM deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
              WHERE d.id = ${id} AND ${visibleEndpoint(access)}
              FOR UPDATE OF d`.pipe(Effect.orDie)
            const found = rows[0]
            if (found === undefined) return yield* new DeliveryNotFound({ deliveryId: id })
            if (!found.enabled) return yield* new WebhookEndpointDisabled({ endpointId: found.endpoint_id })
            // sent again only once its attempt in flight has ended: never two attempts at once
            if (found.in_flight) return yield* new DeliveryInFlight({ deliveryId: id })
            const updated = yield* sql`
              UPDATE deliveries d SET ${requeue} WHERE d.id = ${id} RETURNING ${columns}`.pipe(
              decodeRows(DeliveryRow)
            )
            yield* record(access, actor, "delivery.redelivered", id, { endpoint_id: found.endpoint_id })
            yield* sql`SELECT pg_notify(${deliveriesDueChannel}, '')`.pipe(Effect.orDie)
            return renderDelivery(updated[0]!)
          })
        )
      }),
      recover: Effect.fn("DeliveryLog.recover")(function* (access, endpointId, since, actor) {
        return yield* inTransaction(
          Effect.gen(function* () {
            const found = yield* endpoint(access, endpointId, true)
            if (!found.enabled) return yield* new WebhookEndpointDisabled({ endpointId })
            const requeued = yield* sql<{ id: string }>`
              UPDATE deliveries d SET ${requeue}
              WHERE d.endpoint_id = ${endpointId} AND d.status = 'failed' AND d.created_at >= ${new Date(since)}
                AND (d.claimed_until IS NULL OR d.claimed_until <= now())
              RETURNING d.id`.pipe(Effect.orDie)
            yield* record(access, actor, "webhook_endpoint.recovered", endpointId, {
              since,
              requeued: requeued.length
            })
            if (requeued.length > 0)
              yield* sql`SELECT pg_notify(${deliveriesDueChannel}, '')`.pipe(Effect.orDie)
            return requeued.length
          })
        )
      }),
      test: Effect.fn("DeliveryLog.test")(function* (access, endpointId, actor) {
        return yield* inTransaction(
          Effect.gen(function* () {
            const found = yield* endpoint(access, endpointId, true)
            if (!found.enabled) return yield* new WebhookEndpointDisabled({ endpointId })
            const eventId = yield* events.append({
              customerId: access.customerId,
              channelId: null,
              type: "webhook.test",
              data: { endpoint_id: endpointId, channel_id: found.channel_id },
              recipients: { _tag: "Only", endpointId }
            })
            yield* record(access, actor, "webhook_endpoint.tested", endpointId, { event_id: eventId })
            const rows = yield* sql`
              SELECT ${columns} FROM deliveries d WHERE d.event_id = ${eventId} AND d.endpoint_id = ${endpointId}`.pipe(
              decodeRows(DeliveryRow)
            )
            return renderDelivery(rows[0]!)
          })
        )
      }),
      listForOperator: Effect.fn("DeliveryLog.listForOperator")(function* (customerId, { limit, ...filter }) {
        const rows = yield* sql`
          SELECT ${columns} FROM deliveries d
          WHERE d.customer_id = ${customerId} ${filtered(filter)}
          ORDER BY d.id DESC LIMIT ${limit}`.pipe(decodeRows(DeliveryRow))
        return rows.map(renderDelivery)
      })
    })
  })
)
