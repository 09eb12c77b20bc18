import { type ChannelId, type CustomerId, lifecycleOperationsPerMinute, type Plan } from "@whatisup/domain"
import { Effect, Schema } from "effect"
import type { SqlClient, Statement } from "effect/sql"
import { decodeRows } from "../db/transaction.ts"
import { ChannelOperationPaced, type PacingLimit } from "./errors.ts"

/** What a customer asks of a channel's WhatsApp connection; a connect by pairing code is both `connect` and `pairing_code`. */
export type PacedOperation = "connect" | "pairing_code" | "restart" | "logout"

/** How long operations are kept: the longest window counted. */
export const pacingHistory = "1 day"

export type PairingLimits = Pick<
  Plan,
  "pairing_codes_per_channel_per_hour" | "pairing_codes_per_customer_per_day"
>

const RetryAfter = Schema.Struct({ retry_after: Schema.Number })

/**
 * Pacing counted in PostgreSQL, so it holds across gateway processes. Runs inside the changing
 * transaction, with the channel row locked (its own counts are serialised) and, for pairing codes,
 * the customer row locked (the customer's count is too).
 */
export const makePacing = (sql: SqlClient.SqlClient) => {
  /** Fails when `max` operations already happened within `window`; the answer says when the oldest of them leaves it. */
  const admitOne = (options: {
    readonly channelId: ChannelId
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

  return {
    /** Refuses the operations when the channel or the customer has asked for as many as allowed lately. */
    admit: (
      customerId: CustomerId,
      channelId: ChannelId,
      operations: ReadonlyArray<PacedOperation>,
      limits: PairingLimits
    ) =>
      Effect.gen(function* () {
        const channel = sql`customer_id = ${customerId} AND channel_id = ${channelId}`
        if (operations.includes("pairing_code")) {
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
            scope: sql`customer_id = ${customerId}`,
            operations: ["pairing_code"],
            window: "1 day",
            limit: "pairing_codes_per_customer_per_day",
            max: limits.pairing_codes_per_customer_per_day
          })
        }
        yield* admitOne({
          channelId,
          scope: channel,
          operations: ["connect", "restart", "logout"],
          window: "1 minute",
          limit: "lifecycle_operations_per_minute",
          max: lifecycleOperationsPerMinute
        })
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
