import { type AuditActor, type Customer, defaultPlan, NotFound, type Plan } from "@whatisup/domain"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer } from "effect"
import { Audit } from "../audit/audit.ts"
import { newId } from "../db/ids.ts"
import { Authentication } from "./authentication.ts"
import { credentialsChangedChannel } from "./credentials.ts"
import { type CustomerRow, renderCustomer } from "./rows.ts"

const operator: AuditActor = { type: "operator", id: null }

/** Operator-side management of customers and their plans; every change is audited in the customer's log. */
export class Customers extends Context.Service<
  Customers,
  {
    readonly create: (name: string, plan?: Partial<Plan>) => Effect.Effect<Customer>
    readonly list: Effect.Effect<ReadonlyArray<Customer>>
    readonly get: (id: string) => Effect.Effect<Customer, NotFound>
    readonly setPlan: (id: string, plan: Partial<Plan>) => Effect.Effect<Customer, NotFound>
    readonly setStatus: (id: string, status: "active" | "suspended") => Effect.Effect<Customer, NotFound>
  }
>()("whatisup/Customers") {}

export const layerCustomers = Layer.effect(
  Customers,
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const audit = yield* Audit
    const authentication = yield* Authentication
    const inTransaction = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      sql.withTransaction(effect).pipe(Effect.catchTag("SqlError", Effect.die)) as Effect.Effect<
        A,
        Exclude<E, { _tag: "SqlError" }>,
        R
      >

    const notFound = () => new NotFound({ detail: "No such customer" })

    const get = (id: string) =>
      Effect.flatMap(sql<CustomerRow>`SELECT * FROM customers WHERE id = ${id}`.pipe(Effect.orDie), (rows) =>
        rows[0] ? Effect.succeed(renderCustomer(rows[0])) : Effect.fail(notFound())
      )

    return Customers.of({
      create: (name, plan = {}) =>
        inTransaction(
          Effect.gen(function* () {
            const full = { ...defaultPlan, ...plan }
            const id = newId("customer")
            const rows = yield* sql<CustomerRow>`
              INSERT INTO customers (id, name, max_channels, max_api_keys, messages_per_minute, api_requests_per_second)
              VALUES (${id}, ${name}, ${full.max_channels}, ${full.max_api_keys}, ${full.messages_per_minute},
                ${full.api_requests_per_second})
              RETURNING *`
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
        ),
      list: sql<CustomerRow>`SELECT * FROM customers ORDER BY id`.pipe(
        Effect.map((rows) => rows.map(renderCustomer)),
        Effect.orDie
      ),
      get,
      setPlan: (id, plan) =>
        inTransaction(
          Effect.gen(function* () {
            const rows = yield* sql<CustomerRow>`
              UPDATE customers SET
                max_channels = coalesce(${plan.max_channels ?? null}::int, max_channels),
                max_api_keys = coalesce(${plan.max_api_keys ?? null}::int, max_api_keys),
                messages_per_minute = coalesce(${plan.messages_per_minute ?? null}::int, messages_per_minute),
                api_requests_per_second = coalesce(${plan.api_requests_per_second ?? null}::int, api_requests_per_second),
                updated_at = now()
              WHERE id = ${id} RETURNING *`
            if (rows[0] === undefined) return yield* notFound()
            const customer = renderCustomer(rows[0])
            yield* audit.record({
              customerId: id,
              actor: operator,
              action: "customer.plan_changed",
              resourceType: "customer",
              resourceId: id,
              data: { plan: customer.plan }
            })
            yield* sql`SELECT pg_notify(${credentialsChangedChannel}, ${`customer:${id}`})`
            return customer
          })
        ),
      setStatus: (id, status) =>
        inTransaction(
          Effect.gen(function* () {
            const rows = yield* sql<CustomerRow>`
              UPDATE customers SET status = ${status}, updated_at = now() WHERE id = ${id} RETURNING *`
            if (rows[0] === undefined) return yield* notFound()
            yield* audit.record({
              customerId: id,
              actor: operator,
              action: status === "suspended" ? "customer.suspended" : "customer.resumed",
              resourceType: "customer",
              resourceId: id
            })
            yield* sql`SELECT pg_notify(${credentialsChangedChannel}, ${`customer:${id}`})`
            return renderCustomer(rows[0])
          })
        ).pipe(Effect.tap(authentication.forget))
    })
  })
)
