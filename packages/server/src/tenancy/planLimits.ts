import type { CustomerId } from "@whatisup/domain"
import { Effect, Schema } from "effect"
import type { SqlClient, Statement } from "effect/sql"
import { decodeRows } from "../db/transaction.ts"
import { CustomerNotFound, PlanLimitExceeded } from "./errors.ts"

const Count = Schema.Struct({ n: Schema.Number })

/**
 * Inside the creating transaction: locks the customer (so concurrent creates are counted one after
 * the other) and fails when `counted` already reaches the plan's `limit`.
 */
export const checkPlanLimit = (
  sql: SqlClient.SqlClient,
  customerId: CustomerId,
  limit: "max_channels" | "max_api_keys" | "max_webhook_endpoints",
  counted: Statement.Statement<object>
) =>
  Effect.gen(function* () {
    const plans =
      yield* sql`SELECT ${sql(limit)} AS max FROM customers WHERE id = ${customerId} FOR UPDATE`.pipe(
        decodeRows(Schema.Struct({ max: Schema.Number }))
      )
    const max = plans[0]?.max
    if (max === undefined) return yield* new CustomerNotFound({ customerId })
    const [count] = yield* counted.pipe(decodeRows(Count))
    if ((count?.n ?? 0) >= max) return yield* new PlanLimitExceeded({ limit, max })
  })
