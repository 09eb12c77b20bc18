import {
  type AdminChannel,
  AdminRequestInvalid,
  AdminRpcs,
  CustomerNotFound,
  OperatorAuth,
  OperatorUnauthorized
} from "@whatisup/domain"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import * as crypto from "node:crypto"
import { Audit } from "../audit/audit.ts"
import { KeyRing } from "../crypto/keyRing.ts"
import { ApiKeys } from "../tenancy/apiKeys.ts"
import { Customers } from "../tenancy/customers.ts"
import { CurrentRequestId } from "../audit/requestId.ts"
import { tokensMatch } from "./operatorToken.ts"

const operator = { type: "operator" as const, id: null }

export const layerOperatorAuth = (token: Redacted.Redacted<string>) =>
  Layer.succeed(OperatorAuth, (effect, { headers }) => {
    const header = headers["authorization"] ?? ""
    const presented = header.startsWith("Bearer ") ? header.slice("Bearer ".length).trim() : ""
    return presented !== "" && tokensMatch(token, presented)
      ? Effect.provideService(effect, CurrentRequestId, `admin-${crypto.randomUUID()}`)
      : Effect.fail(new OperatorUnauthorized({ message: "the operator token is missing or wrong" }))
  })

export const layerAdminHandlers = AdminRpcs.toLayer(
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const customers = yield* Customers
    const apiKeys = yield* ApiKeys
    const keyRing = yield* KeyRing
    const audit = yield* Audit
    const notFound = (id: string) => () => new CustomerNotFound({ customer_id: id })

    return {
      CreateCustomer: ({ name, plan }) =>
        sql
          .withTransaction(
            Effect.gen(function* () {
              const customer = yield* customers.create(name, plan)
              const api_key = yield* apiKeys.create({
                customerId: customer.id,
                name: "first key",
                channelId: null,
                actor: operator
              })
              return { customer, api_key }
            })
          )
          .pipe(Effect.orDie),
      ListCustomers: () => customers.list,
      GetCustomer: ({ id }) => customers.get(id).pipe(Effect.mapError(notFound(id))),
      SetPlan: ({ id, plan }) => customers.setPlan(id, plan).pipe(Effect.mapError(notFound(id))),
      SuspendCustomer: ({ id }) => customers.setStatus(id, "suspended").pipe(Effect.mapError(notFound(id))),
      ResumeCustomer: ({ id }) => customers.setStatus(id, "active").pipe(Effect.mapError(notFound(id))),
      IssueApiKey: ({ customer_id, name, channel_id }) =>
        apiKeys
          .create({
            customerId: customer_id,
            name: name ?? null,
            channelId: channel_id ?? null,
            actor: operator
          })
          .pipe(
            Effect.mapError((error) =>
              error._tag === "NotFound"
                ? new CustomerNotFound({ customer_id })
                : new AdminRequestInvalid({
                    message:
                      error._tag === "InvalidRequest"
                        ? `no channel ${channel_id} for customer ${customer_id}`
                        : (error.detail ?? error.title)
                  })
            )
          ),
      ListChannels: ({ node, status, customer_id }) =>
        sql<{
          id: string
          customer_id: string
          name: string | null
          status: AdminChannel["status"]
          status_reason: string | null
          phone_number: string | null
          node: string | null
          lease_expires_at: Date | null
        }>`
          SELECT c.id, c.customer_id, c.name, c.status, c.status_reason, c.phone_number,
            l.owner AS node, l.expires_at AS lease_expires_at
          FROM channels c LEFT JOIN channel_leases l ON l.channel_id = c.id AND l.expires_at > now()
          WHERE true
            ${node === undefined ? sql`` : sql`AND l.owner = ${node}`}
            ${status === undefined ? sql`AND c.status <> 'deleted'` : sql`AND c.status = ${status}`}
            ${customer_id === undefined ? sql`` : sql`AND c.customer_id = ${customer_id}`}
          ORDER BY c.id`.pipe(
          Effect.map((rows) =>
            rows.map((row): AdminChannel => ({
              ...row,
              id: row.id as AdminChannel["id"],
              customer_id: row.customer_id as AdminChannel["customer_id"],
              lease_expires_at: row.lease_expires_at?.toISOString() ?? null
            }))
          ),
          Effect.orDie
        ),
      RotateMasterKey: () =>
        sql
          .withTransaction(
            Effect.gen(function* () {
              const stores = yield* keyRing.reencryptAll
              yield* audit.record({
                customerId: null,
                actor: operator,
                action: "master_key.rotated",
                resourceType: "master_key",
                resourceId: keyRing.newestKeyId,
                data: { stores }
              })
              return { key_id: keyRing.newestKeyId, stores }
            })
          )
          .pipe(Effect.orDie)
    }
  })
)
