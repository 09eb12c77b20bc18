import { type AuditActor, type Customer, type CustomerId, defaultPlan, type Plan } from "@whatisup/domain"
import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { Audit } from "../audit/audit.ts"
import { newId } from "../db/ids.ts"
import { decodeRows, transaction } from "../db/transaction.ts"
import { Authentication } from "./authentication.ts"
import { credentialsChangedChannel, customerChanged } from "./credentials.ts"
import { CustomerNotFound } from "./errors.ts"
import { customerColumns, CustomerRow, renderCustomer } from "./rows.ts"

const operator: AuditActor = { type: "operator", id: null }

/** Operator-side management of customers and their plans; every change is audited in the customer's log. */
export class Customers extends Context.Service<
  Customers,
  {
    readonly create: (name: string, plan?: Partial<Plan>) => Effect.Effect<Customer>
    readonly list: Effect.Effect<ReadonlyArray<Customer>>
    readonly get: (id: CustomerId) => Effect.Effect<Customer, CustomerNotFound>
    readonly setPlan: (id: CustomerId, plan: Partial<Plan>) => Effect.Effect<Customer, CustomerNotFound>
    readonly setStatus: (
      id: CustomerId,
      status: "active" | "suspended"
    ) => Effect.Effect<Customer, CustomerNotFound>
  }
>()("whatisup/Customers") {}

export const layerCustomers = Layer.effect(
  Customers,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* Audit
    const authentication = yield* Authentication
    const inTransaction = transaction(sql)
    const columns = sql.literal(customerColumns)

    /** The customer a change returned, audited; every process drops what it cached about the customer's keys. */
    const changed = (
      id: CustomerId,
      action: string,
      rows: ReadonlyArray<CustomerRow>,
      data?: (customer: Customer) => Record<string, unknown>
    ) =>
      Effect.gen(function* () {
        if (rows[0] === undefined) return yield* new CustomerNotFound({ customerId: id })
        const customer = renderCustomer(rows[0])
        yield* audit.record({
          customerId: id,
          actor: operator,
          action,
          resourceType: "customer",
          resourceId: id,
          ...(data === undefined ? {} : { data: data(customer) })
        })
        yield* sql`SELECT pg_notify(${credentialsChangedChannel}, ${customerChanged(id)})`
        return customer
      })

    return Customers.of({
      create: Effect.fn("Customers.create")(function* (name, plan = {}) {
        return yield* inTransaction(
          Effect.gen(function* () {
            const full = { ...defaultPlan, ...plan }
            const id = newId.customer()
            const rows = yield* sql`
              INSERT INTO customers (id, name, max_channels, max_api_keys, messages_per_minute,
                api_requests_per_second, pairing_codes_per_channel_per_hour, pairing_codes_per_customer_per_day,
                max_webhook_endpoints)
              VALUES (${id}, ${name}, ${full.max_channels}, ${full.max_api_keys}, ${full.messages_per_minute},
                ${full.api_requests_per_second}, ${full.pairing_codes_per_channel_per_hour},
                ${full.pairing_codes_per_customer_per_day}, ${full.max_webhook_endpoints})
              RETURNING ${columns}`.pipe(decodeRows(CustomerRow))
            yield* audit.record({
              customerId: id,
              actor: operator,
              action: "customer.created",
              resourceType: "customer",
              resourceId: id,
              data: { name, plan: full }
            })
            return renderCustomer(rows[0]!)
          })
        )
      }),
      list: sql`SELECT ${columns} FROM customers ORDER BY id`.pipe(
        decodeRows(CustomerRow),
        Effect.map((rows) => rows.map(renderCustomer))
      ),
      get: Effect.fn("Customers.get")(function* (id) {
        const rows = yield* sql`SELECT ${columns} FROM customers WHERE id = ${id}`.pipe(
          decodeRows(CustomerRow)
        )
        if (rows[0] === undefined) return yield* new CustomerNotFound({ customerId: id })
        return renderCustomer(rows[0])
      }),
      setPlan: Effect.fn("Customers.setPlan")(function* (id, plan) {
        const customer = yield* inTransaction(
          Effect.gen(function* () {
            const rows = yield* sql`
              UPDATE customers SET
                max_channels = coalesce(${plan.max_channels ?? null}::int, max_channels),
                max_api_keys = coalesce(${plan.max_api_keys ?? null}::int, max_api_keys),
                messages_per_minute = coalesce(${plan.messages_per_minute ?? null}::int, messages_per_minute),
                api_requests_per_second = coalesce(${plan.api_requests_per_second ?? null}::int, api_requests_per_second),
                pairing_codes_per_channel_per_hour = coalesce(${plan.pairing_codes_per_channel_per_hour ?? null}::int,
                  pairing_codes_per_channel_per_hour),
                pairing_codes_per_customer_per_day = coalesce(${plan.pairing_codes_per_customer_per_day ?? null}::int,
                  pairing_codes_per_customer_per_day),
                max_webhook_endpoints = coalesce(${plan.max_webhook_endpoints ?? null}::int, max_webhook_endpoints),
                updated_at = now()
              WHERE id = ${id} RETURNING ${columns}`.pipe(decodeRows(CustomerRow))
            return yield* changed(id, "customer.plan_changed", rows, (customer) => ({ plan: customer.plan }))
          })
        )
        // read again at once here; other processes hear it from the commit's NOTIFY
        yield* authentication.forget(customerChanged(id))
        return customer
      }),
      setStatus: Effect.fn("Customers.setStatus")(function* (id, status) {
        const customer = yield* inTransaction(
          Effect.gen(function* () {
            const rows = yield* sql`
              UPDATE customers SET status = ${status}, updated_at = now() WHERE id = ${id}
              RETURNING ${columns}`.pipe(decodeRows(CustomerRow))
            return yield* changed(
              id,
              status === "suspended" ? "customer.suspended" : "customer.resumed",
              rows
            )
          })
        )
        yield* authentication.forget(customerChanged(id))
        return customer
      })
    })
  })
)
