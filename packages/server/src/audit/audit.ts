import { AuditActor, type AuditEvent, AuditEventId, type CustomerId } from "@whatisup/domain"
import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { newId } from "../db/ids.ts"
import { type InvalidCursor, listPage, type Page, type PageRequest } from "../db/pagination.ts"
import { decodeRows } from "../db/transaction.ts"
import { CurrentClientRequestId, CurrentRequestId } from "./requestId.ts"

export interface AuditEntry {
  readonly customerId: CustomerId | null
  readonly actor: AuditActor
  readonly action: string
  readonly resourceType: string
  readonly resourceId: string
  readonly data?: Record<string, unknown>
}

const AuditRow = Schema.Struct({
  id: AuditEventId,
  actor_type: AuditActor.fields.type,
  actor_id: Schema.NullOr(Schema.String),
  action: Schema.String,
  resource_type: Schema.String,
  resource_id: Schema.String,
  request_id: Schema.NullOr(Schema.String),
  client_request_id: Schema.NullOr(Schema.String),
  data: Schema.Record(Schema.String, Schema.Unknown),
  created_at: Schema.Date
})

const render = (row: typeof AuditRow.Type): AuditEvent => ({
  id: row.id,
  actor: { type: row.actor_type, id: row.actor_id },
  action: row.action,
  resource_type: row.resource_type,
  resource_id: row.resource_id,
  request_id: row.request_id,
  client_request_id: row.client_request_id,
  data: row.data,
  created_at: row.created_at.toISOString()
})

/**
 * The append-only audit log. `record` joins the caller's transaction, so the row commits or rolls
 * back with the change it describes.
 */
export class Audit extends Context.Service<
  Audit,
  {
    readonly record: (entry: AuditEntry) => Effect.Effect<void>
    readonly list: (
      options: PageRequest & {
        readonly customerId: CustomerId
        readonly resourceType?: string | undefined
        readonly resourceId?: string | undefined
      }
    ) => Effect.Effect<Page<AuditEvent>, InvalidCursor>
  }
>()("whatisup/Audit") {}

export const layerAudit = Layer.effect(
  Audit,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    return Audit.of({
      record: Effect.fn("Audit.record")(function* (entry: AuditEntry) {
        const requestId = yield* CurrentRequestId
        const clientRequestId = yield* CurrentClientRequestId
        yield* sql`
          INSERT INTO audit_events
            (id, customer_id, actor_type, actor_id, action, resource_type, resource_id, request_id,
              client_request_id, data)
          VALUES (${newId.audit()}, ${entry.customerId}, ${entry.actor.type}, ${entry.actor.id},
            ${entry.action}, ${entry.resourceType}, ${entry.resourceId}, ${requestId}, ${clientRequestId},
            ${JSON.stringify(entry.data ?? {})}::jsonb)`.pipe(Effect.orDie)
      }),
      list: Effect.fn("Audit.list")(function* ({ customerId, resourceType, resourceId, ...page }) {
        const found = yield* listPage(sql, page, "aud", (window) =>
          sql`
            SELECT id, actor_type, actor_id, action, resource_type, resource_id, request_id, client_request_id,
              data, created_at
            FROM audit_events
            WHERE customer_id = ${customerId}
              ${resourceType === undefined ? sql`` : sql`AND resource_type = ${resourceType}`}
              ${resourceId === undefined ? sql`` : sql`AND resource_id = ${resourceId}`}
              ${window}`.pipe(decodeRows(AuditRow))
        )
        return { data: found.data.map(render), next_cursor: found.next_cursor }
      })
    })
  })
)
