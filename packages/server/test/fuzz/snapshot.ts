import type { PgClient } from "@effect/sql-pg"
import { Effect } from "effect"

/** Tables that belong to no customer: the gateway's own bookkeeping. */
const globalTables = new Set(["gateway_nodes", "key_ring_canary", "whatisup_migrations"])

/**
 * Columns that change without anyone acting on the row: `last_used_at` is written in batches a few
 * seconds after the key's last use (checked apart: it never passes the time of the snapshot).
 */
const movingColumns: Record<string, ReadonlyArray<string>> = { api_keys: ["last_used_at"] }

/** How a table's rows of one customer are found: by its own column, or through the row it hangs from. */
const ownership: ReadonlyArray<{ readonly column: string; readonly parent?: string }> = [
  { column: "customer_id" },
  { column: "channel_id", parent: "channels" },
  { column: "message_id", parent: "messages" },
  { column: "delivery_id", parent: "deliveries" },
  { column: "endpoint_id", parent: "webhook_endpoints" }
]

/** Every row of one customer, table by table, as JSON text in a stable order. */
export type CustomerRows = Readonly<Record<string, ReadonlyArray<string>>>

/**
 * Every row of the customer in every table of the public schema, found through `customer_id` or the
 * row it hangs from (a channel, a message, a delivery, an endpoint). A table that has neither and is
 * not the gateway's own bookkeeping fails the snapshot: a new table must say whose rows it holds.
 */
export const rowsOfCustomer = (sql: PgClient.PgClient, customerId: string) =>
  Effect.gen(function* () {
    const columns = yield* sql<{ table_name: string; column_name: string }>`
      SELECT c.table_name, c.column_name FROM information_schema.columns c
      JOIN information_schema.tables t USING (table_schema, table_name)
      WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'`
    const tables = new Map<string, Set<string>>()
    for (const { table_name, column_name } of columns) {
      const known = tables.get(table_name) ?? new Set()
      known.add(column_name)
      tables.set(table_name, known)
    }
    const rows: Record<string, ReadonlyArray<string>> = {}
    const unclassified: Array<string> = []
    for (const [table, tableColumns] of [...tables].sort(([a], [b]) => a.localeCompare(b))) {
      if (globalTables.has(table)) continue
      const dropped = (movingColumns[table] ?? []).map((column) => ` - '${column}'`).join("")
      const json = sql.unsafe(`to_jsonb(t)${dropped}`)
      if (table === "customers") {
        rows[table] = yield* selectRows(
          sql,
          sql`SELECT ${json} AS row FROM customers t WHERE id = ${customerId}`
        )
        continue
      }
      const by = ownership.find(({ column }) => tableColumns.has(column))
      if (by === undefined) {
        unclassified.push(table)
        continue
      }
      rows[table] = yield* selectRows(
        sql,
        by.parent === undefined
          ? sql`SELECT ${json} AS row FROM ${sql(table)} t WHERE customer_id = ${customerId}`
          : sql`SELECT ${json} AS row FROM ${sql(table)} t WHERE ${sql(by.column)} IN (
              SELECT id FROM ${sql(by.parent)} WHERE customer_id = ${customerId})`
      )
    }
    if (unclassified.length > 0) {
      return yield* Effect.die(
        new Error(
          `tables neither of a customer nor known as global: ${unclassified.join(", ")} (classify them here)`
        )
      )
    }
    return rows as CustomerRows
  })

const selectRows = (sql: PgClient.PgClient, query: Effect.Effect<ReadonlyArray<any>, unknown>) =>
  Effect.map(Effect.orDie(query), (found) => found.map((r) => JSON.stringify(r.row)).sort())

/** The latest `last_used_at` among the customer's keys. */
export const lastKeyUse = (sql: PgClient.PgClient, customerId: string) =>
  Effect.map(
    Effect.orDie(
      sql<{ at: Date | null }>`SELECT max(last_used_at) AS at FROM api_keys WHERE customer_id = ${customerId}`
    ),
    (found) => found[0]?.at ?? null
  )

/** Every audit row, by id. */
export const auditRows = (sql: PgClient.PgClient) =>
  Effect.map(
    Effect.orDie(sql<{ id: string; row: unknown }>`SELECT id, to_jsonb(a) AS row FROM audit_events a`),
    (found) => new Map(found.map(({ id, row }) => [id, JSON.stringify(row)]))
  )
