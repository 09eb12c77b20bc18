import { AdminRequestInvalid, AdminRpcs, CustomerNotFound } from "@whatisup/domain"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { Audit } from "../audit/audit.ts"
import { Channels } from "../channels/channels.ts"
import { KeyRing } from "../crypto/keyRing.ts"
import { transaction } from "../db/transaction.ts"
import { ApiKeys } from "../tenancy/apiKeys.ts"
import { Customers } from "../tenancy/customers.ts"
import { DeliveryLog } from "../webhooks/deliveryLog.ts"
import { MessageLog } from "../messages/messageLog.ts"
import type * as Tenancy from "../tenancy/errors.ts"

const operator = { type: "operator" as const, id: null }

type OperatorError = Tenancy.CustomerNotFound | Tenancy.PlanLimitExceeded | Tenancy.BindingChannelNotFound

type AdminErrorOf<E> = E extends Tenancy.CustomerNotFound
  ? CustomerNotFound
  : E extends Tenancy.PlanLimitExceeded | Tenancy.BindingChannelNotFound
    ? AdminRequestInvalid
    : E

/** The one place where what a capability refuses becomes the admin RPC's error. */
const adminErrorFor = (error: OperatorError) => {
  switch (error._tag) {
    case "CustomerNotFound":
      return new CustomerNotFound({ customer_id: error.customerId })
    case "PlanLimitExceeded":
      return new AdminRequestInvalid({ message: error.message })
    case "BindingChannelNotFound":
      return new AdminRequestInvalid({
        message: `no channel ${error.channelId} for customer ${error.customerId}`
      })
  }
}

const answerAdmin = <A, E extends OperatorError, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.mapError(effect, adminErrorFor) as Effect.Effect<A, AdminErrorOf<E>, R>

export const layerAdminHandlers = AdminRpcs.toLayer(
  Effect.gen(function* () {
    const inTransaction = transaction(yield* SqlClient.SqlClient)
    const customers = yield* Customers
    const apiKeys = yield* ApiKeys
    const channels = yield* Channels
    const keyRing = yield* KeyRing
    const audit = yield* Audit
    const deliveries = yield* DeliveryLog
    const messages = yield* MessageLog

    return {
      CreateCustomer: ({ name, plan }) =>
        inTransaction(
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
        ).pipe(Effect.orDie),
      ListCustomers: () => customers.list,
      GetCustomer: ({ id }) => answerAdmin(customers.get(id)),
      SetPlan: ({ id, plan }) => answerAdmin(customers.setPlan(id, plan)),
      // the customer and its channels change together: keys refused and connections stopped, or both back
      SuspendCustomer: ({ id }) =>
        answerAdmin(
          inTransaction(
            Effect.tap(customers.setStatus(id, "suspended"), () => channels.suspendCustomer(id, operator))
          )
        ),
      ResumeCustomer: ({ id }) =>
        answerAdmin(
          inTransaction(
            Effect.tap(customers.setStatus(id, "active"), () => channels.resumeCustomer(id, operator))
          )
        ),
      IssueApiKey: ({ customer_id, name, channel_id }) =>
        answerAdmin(
          apiKeys.create({
            customerId: customer_id,
            name: name ?? null,
            channelId: channel_id ?? null,
            actor: operator
          })
        ),
      ListChannels: ({ node, status, customer_id }) =>
        channels.listForOperator({ node, status, customerId: customer_id }),
      ListDeliveries: ({ customer_id, status, limit }) =>
        Effect.gen(function* () {
          yield* answerAdmin(customers.get(customer_id))
          return yield* deliveries.listForOperator(customer_id, { status, limit: limit ?? 100 })
        }),
      ListMessages: ({ channel_id, direction, status, limit }) =>
        Effect.flatMap(
          messages.listForOperator(channel_id, { direction, status, limit: limit ?? 100 }),
          (found) =>
            found === undefined
              ? Effect.fail(new AdminRequestInvalid({ message: `no channel ${channel_id}` }))
              : Effect.succeed(found)
        ),
      RotateMasterKey: () =>
        inTransaction(
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
        ).pipe(Effect.orDie)
    }
  })
)
