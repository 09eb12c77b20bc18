import {
  type ChannelId,
  type CustomerId,
  customerLifecycleOperationsPerMinute,
  lifecycleOperationsPerMinute,
  type Plan
} from "@whatisup/domain"
import { Effect, Schema } from "effect"
import type { SqlClient, Statement } from "effect/sql"
import { decodeRows } from "../db/transaction.ts"
import { ChannelOperationPaced, type PacingLimit } from "./errors.ts"

/**
 * What a customer asks of its channels: creating and deleting them, and changing their WhatsApp
 * connection; a connect by pairing code is both `connect` and `pairing_code`.
 */
export type PacedOperation = "create" | "delete" | "connect" | "pairing_code" | "restart" | "logout"

/** Operations on one channel's connection, paced per channel. */
const connectionOperations: ReadonlyArray<PacedOperation> = ["connect", "restart", "logout"]

/** Everything that creates, deletes or reconnects a channel, paced per customer: churning channels buys nothing. */
const customerOperations: ReadonlyArray<PacedOperation> = ["create", "delete", ...connectionOperations]

/** How long operations are kept: the longest window counted. */
export const pacingHistory = "1 day"

export type PacingLimits = Pick<
  Plan,
  "max_channels" | "pairing_codes_per_channel_per_hour" | "pairing_codes_per_customer_per_day"
>

const RetryAfter = Schema.Struct({ retry_after: Schema.Number })

/**
 * Pacing counted in PostgreSQL, so it holds across gateway processes. Runs inside the changing
 * transaction, with the customer row locked exclusively (the customer's counts are serialised) and
 * the channel row, when there is one yet, locked too.
 */
export const makePacing = (sql: SqlClient.SqlClient) => {
  /** Fails when `max` operations already happened within `window`; the answer says when the oldest of them leaves it. */
  const admitOne = (options: {
    readonly channelId: ChannelId | null
    readonly scope: Statement.Fragment
    readonly operations: ReadonlyArray<PacedOperation>
    readonly window: string
    readonly limit: PacingLimit
    readonly max: number
  }) =>
    Effect.gen(function* () {
      const rows = yield* sql`
        SELECT greatest(1, ceil(extract(epoch FROM created_at + ${options.window}::interval - now())))::int
          AS retry_after
        FROM channel_operations
        WHERE ${options.scope} AND operation IN ${sql.in(options.operations)}
          AND created_at > now() - ${options.window}::interval
        ORDER BY created_at DESC OFFSET ${options.max - 1} LIMIT 1`.pipe(decodeRows(RetryAfter))
      const oldest = rows[0]
      if (oldest !== undefined) {
        return yield* new ChannelOperationPaced({
          channelId: options.channelId,
          limit: options.limit,
          max: options.max,
          retryAfterSeconds: oldest.retry_after
        })
      }
    })

  const any = (operations: ReadonlyArray<PacedOperation>, among: ReadonlyArray<PacedOperation>) =>
    operations.some((operation) => among.includes(operation))

  return {
    /**
     * Refuses the operations when the channel or the customer has asked for as many as allowed
     * lately; `channelId` is null for a channel not created yet.
     */
    admit: (
      customerId: CustomerId,
      channelId: ChannelId | null,
      operations: ReadonlyArray<PacedOperation>,
      limits: PacingLimits
    ) =>
      Effect.gen(function* () {
        const customer = sql`customer_id = ${customerId}`
        const channel = sql`customer_id = ${customerId} AND channel_id = ${channelId}`
        if (channelId !== null && operations.includes("pairing_code")) {
          yield* admitOne({
            channelId,
            scope: channel,
            operations: ["pairing_code"],
            window: "1 hour",
            limit: "pairing_codes_per_channel_per_hour",
            max: limits.pairing_codes_per_channel_per_hour
          })
          yield* admitOne({
            channelId,
            scope: customer,
            operations: ["pairing_code"],
            window: "1 day",
            limit: "pairing_codes_per_customer_per_day",
            max: limits.pairing_codes_per_customer_per_day
          })
        }
        if (channelId !== null && any(operations, connectionOperations)) {
          yield* admitOne({
            channelId,
            scope: channel,
            operations: connectionOperations,
            window: "1 minute",
            limit: "lifecycle_operations_per_minute",
            max: lifecycleOperationsPerMinute
          })
        }
        if (any(operations, customerOperations)) {
          yield* admitOne({
            channelId,
            scope: customer,
            operations: customerOperations,
            window: "1 minute",
            limit: "lifecycle_operations_per_customer_per_minute",
            max: customerLifecycleOperationsPerMinute(limits.max_channels)
          })
        }
      }),

    /** Counts the operations, in the transaction that performs them. */
    note: (customerId: CustomerId, channelId: ChannelId, operations: ReadonlyArray<PacedOperation>) =>
      sql`
        INSERT INTO channel_operations (customer_id, channel_id, operation)
        SELECT ${customerId}, ${channelId}, jsonb_array_elements_text(${JSON.stringify(operations)}::jsonb)`.pipe(
        Effect.orDie,
        Effect.asVoid
      ),

    /** Forgets operations older than every window. */
    prune: sql`DELETE FROM channel_operations WHERE created_at < now() - ${pacingHistory}::interval`.pipe(
      Effect.asVoid
    )
  }
}
