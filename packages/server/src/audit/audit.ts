import type { AuditActor, AuditEvent } from "@whatisup/domain"
import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { decodeCursor, defaultPageSize, toPage } from "../db/pagination.ts"
import { CurrentRequestId } from "./requestId.ts"
import { newId } from "../db/ids.ts"

export interface AuditEntry {
  readonly customerId: string | null
  readonly actor: AuditActor
  readonly action: string
  readonly resourceType: string
  readonly resourceId: string
  readonly data?: Record<string, unknown>
}

interface AuditRow {
  readonly id: string
  readonly actor_type: AuditActor["type"]
  readonly actor_id: string | null
  readonly action: string
  readonly resource_type: string
  readonly resource_id: string
  readonly request_id: string | null
  readonly data: Record<string, unknown>
  readonly created_at: Date
}

const render = (row: AuditRow): AuditEvent => ({
  id: row.id as AuditEvent["id"],
  actor: { type: row.actor_type, id: row.actor_id },
  action: row.action,
  resource_type: row.resource_type,
  resource_id: row.resource_id,
  request_id: row.request_id,
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
    readonly record: (entry: AuditEntry) => Effect.Effect<void, never>
    readonly list: (options: {
      readonly customerId: string
      readonly limit?: number | undefined
      readonly cursor?: string | undefined
      readonly resourceType?: string | undefined
      readonly resourceId?: string | undefined
    }) => Effect.Effect<
      { data: Array<AuditEvent>; next_cursor: string | null },
      import("@whatisup/domain").InvalidRequest
    >
  }
>()("whatisup/Audit") {}

export const layerAudit = Layer.effect(
  Audit,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    return Audit.of({
      record: (entry) =>
        Effect.gen(function* () {
          const requestId = yield* CurrentRequestId
          yield* sql`
            INSERT INTO audit_events
              (id, customer_id, actor_type, actor_id, action, resource_type, resource_id, request_id, data)
            VALUES (${newId("audit")}, ${entry.customerId}, ${entry.actor.type}, ${entry.actor.id},
              ${entry.action}, ${entry.resourceType}, ${entry.resourceId}, ${requestId},
              ${JSON.stringify(entry.data ?? {})}::jsonb)`
        }).pipe(Effect.orDie),
      list: ({ customerId, limit = defaultPageSize, cursor, resourceType, resourceId }) =>
        Effect.gen(function* () {
          const after = yield* decodeCursor(cursor, "aud")
          const rows = yield* sql<AuditRow>`
            SELECT id, actor_type, actor_id, action, resource_type, resource_id, request_id, data, created_at
            FROM audit_events
            WHERE customer_id = ${customerId}
              ${resourceType === undefined ? sql`` : sql`AND resource_type = ${resourceType}`}
              ${resourceId === undefined ? sql`` : sql`AND resource_id = ${resourceId}`}
              ${after === null ? sql`` : sql`AND id < ${after}`}
            ORDER BY id DESC
            LIMIT ${limit + 1}`.pipe(Effect.orDie)
          return toPage(rows, limit, render)
        })
    })
  })
)
