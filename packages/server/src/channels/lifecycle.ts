import type { ChannelId, ChannelStatus, EventType } from "@whatisup/domain"
import { Data, Context, Effect, Layer } from "effect"
import { SqlClient, type Statement } from "effect/sql"
import { Audit } from "../audit/audit.ts"
import { decodeRows, transaction } from "../db/transaction.ts"
import { KeyRing } from "../crypto/keyRing.ts"
import { AuthStates } from "./loginStore.ts"
import { ChannelMessaging } from "./messaging.ts"
import { EventLog } from "../events/eventLog.ts"
import { type Fence, Leases, type LeaseLost } from "./leases.ts"
import { channelColumns, ChannelRow, pairingCodePlace, qrPlace } from "./rows.ts"
import { canMove } from "./status.ts"

/** What a running channel reports about its connection. */
export type Change = Data.TaggedEnum<{
  Starting: {}
  Qr: { readonly qr: string; readonly expiresAt: Date }
  PairingCode: { readonly code: string }
  Connected: { readonly phoneNumber: string }
  Disconnected: { readonly code: number; readonly reason: string }
  LoggedOut: { readonly code: number }
  Failed: { readonly reason: string }
  /**
   * Nobody paired: the QR went unscanned over several rounds (`qr_timeout`), or the pairing code was
   * not entered in its one round (`pairing_code_timeout`). The channel rests until connected again.
   */
  PairingTimeout: { readonly code: number; readonly reason: PairingTimeoutReason }
}>
export const Change = Data.taggedEnum<Change>()

export type PairingTimeoutReason = "qr_timeout" | "pairing_code_timeout"

const system = { type: "system" as const, id: null }

/**
 * The line an operator reads when a channel's connection changes: what happened, with its code or
 * reason, never a QR or a pairing code. QR rounds and pairing codes are not logged.
 */
const logChange = (channelId: ChannelId, change: Change, status: ChannelStatus) => {
  const at = Effect.annotateLogs({ channel_id: channelId, status })
  switch (change._tag) {
    case "Connected":
      return Effect.logInfo("channel connected").pipe(at)
    case "Disconnected":
      return status === "connecting"
        ? Effect.logInfo("channel paired; logging in").pipe(at)
        : Effect.logInfo("channel disconnected").pipe(
            Effect.annotateLogs({ code: change.code, reason: change.reason }),
            at
          )
    case "PairingTimeout":
      return Effect.logInfo("channel stopped pairing").pipe(
        Effect.annotateLogs({ code: change.code, reason: change.reason }),
        at
      )
    case "LoggedOut":
      return Effect.logInfo("channel logged out by the phone").pipe(
        Effect.annotateLogs({ code: change.code }),
        at
      )
    case "Failed":
      return Effect.logInfo("channel failed").pipe(Effect.annotateLogs({ reason: change.reason }), at)
    case "Starting":
    case "Qr":
    case "PairingCode":
      return Effect.void
  }
}

/**
 * The writes a channel actor makes, each fenced by its lease and validated against the status model
 * in one transaction with its event and audit row. `stop` tells the actor the channel should no
 * longer run (logged out, deleted or stopped meanwhile).
 */
export class ChannelLifecycle extends Context.Service<
  ChannelLifecycle,
  {
    readonly load: (channelId: ChannelId) => Effect.Effect<ChannelRow | undefined>
    readonly record: (fence: Fence, change: Change) => Effect.Effect<"continue" | "stop", LeaseLost>
  }
>()("whatisup/ChannelLifecycle") {}

interface Plan {
  readonly status: ChannelStatus
  readonly reason?: string | null
  readonly stop?: boolean
  readonly set?: Statement.Statement<unknown>
  readonly event?: {
    readonly type: EventType
    readonly data: Record<string, unknown>
    readonly secret?: Record<string, unknown>
  }
  readonly audit?: { readonly action: string; readonly data: Record<string, unknown> }
}

export const layerChannelLifecycle = Layer.effect(
  ChannelLifecycle,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const leases = yield* Leases
    const events = yield* EventLog
    const audit = yield* Audit
    const keyRing = yield* KeyRing
    const authStates = yield* AuthStates
    const messaging = yield* ChannelMessaging

    const plan = (row: ChannelRow, change: Change): Plan => {
      switch (change._tag) {
        case "Starting":
          return {
            status:
              row.status === "pairing" ? "pairing" : row.status === "connected" ? "reconnecting" : row.status
          }
        case "Qr":
          return {
            status: "pairing",
            set: sql`qr_ciphertext = ${keyRing.encrypt(change.qr, qrPlace(row.id))}, qr_expires_at = ${change.expiresAt},`,
            // the QR holds the device's adv secret: the event lists when it expires and keeps the QR encrypted
            event: {
              type: "channel.qr",
              data: { expires_at: change.expiresAt.toISOString() },
              secret: { qr: change.qr }
            }
          }
        case "PairingCode":
          return {
            status: "pairing",
            set: sql`pairing_code_ciphertext = ${keyRing.encrypt(change.code, pairingCodePlace(row.id))},`
          }
        case "Connected":
          return {
            status: "connected",
            reason: null,
            set: sql`phone_number = ${change.phoneNumber}, last_connected_at = now(), qr_ciphertext = NULL,
              qr_expires_at = NULL, pairing_code_ciphertext = NULL,`,
            event: { type: "channel.connected", data: { phone_number: change.phoneNumber } },
            audit: { action: "channel.connected", data: { phone_number: change.phoneNumber } }
          }
        case "Disconnected":
          // 515 while pairing is WhatsApp's restart after a successful scan: part of pairing, the login follows
          return row.status === "pairing" && change.code === 515
            ? {
                status: "connecting",
                reason: null,
                set: sql`qr_ciphertext = NULL, qr_expires_at = NULL, pairing_code_ciphertext = NULL,`,
                audit: { action: "channel.paired", data: { code: change.code } }
              }
            : {
                status: row.status === "pairing" ? "pairing" : "reconnecting",
                reason: change.reason,
                // a code shown before the disconnect can no longer be used
                set: sql`qr_ciphertext = NULL, qr_expires_at = NULL, pairing_code_ciphertext = NULL,`,
                event: { type: "channel.disconnected", data: { code: change.code, reason: change.reason } },
                audit: { action: "channel.disconnected", data: { code: change.code, reason: change.reason } }
              }
        case "PairingTimeout":
          return {
            status: "created",
            reason: change.reason,
            stop: true,
            set: sql`desired = 'stopped', qr_ciphertext = NULL, qr_expires_at = NULL, pairing_code_ciphertext = NULL,`,
            event: { type: "channel.disconnected", data: { code: change.code, reason: change.reason } },
            audit: { action: `channel.${change.reason}`, data: {} }
          }
        case "LoggedOut":
          return {
            status: "logged_out",
            reason: "logged_out_by_phone",
            stop: true,
            set: sql`desired = 'stopped', qr_ciphertext = NULL, qr_expires_at = NULL, pairing_code_ciphertext = NULL,`,
            event: { type: "channel.logged_out", data: { code: change.code, reason: "logged_out_by_phone" } },
            audit: { action: "channel.logged_out", data: { code: change.code } }
          }
        case "Failed":
          return {
            status: "failed",
            reason: change.reason,
            stop: true,
            set: sql`desired = 'stopped', qr_ciphertext = NULL, qr_expires_at = NULL, pairing_code_ciphertext = NULL,`,
            event: { type: "channel.failed", data: { reason: change.reason } },
            audit: { action: "channel.failed", data: { reason: change.reason } }
          }
      }
    }

    const inTransaction = transaction(sql)
    const columns = sql.literal(channelColumns)

    const record = (fence: Fence, change: Change) =>
      inTransaction(
        Effect.gen(function* () {
          yield* leases.check(fence)
          const rows =
            yield* sql`SELECT ${columns} FROM channels WHERE id = ${fence.channelId} FOR UPDATE`.pipe(
              decodeRows(ChannelRow)
            )
          const row = rows[0]
          if (row === undefined || row.desired !== "running") return { outcome: "stop" as const }
          const next = plan(row, change)
          if (!canMove(row.status, next.status)) {
            yield* Effect.logWarning("a channel event its status does not allow; stopping the actor").pipe(
              Effect.annotateLogs({ channel_id: row.id, status: row.status, change: change._tag })
            )
            return { outcome: "stop" as const }
          }
          yield* sql`
              UPDATE channels SET ${next.set ?? sql``}
                status = ${next.status},
                status_reason = ${next.reason === undefined ? row.status_reason : next.reason},
                updated_at = now()
              WHERE id = ${fence.channelId}`.pipe(Effect.orDie)
          // a logout forgets the login in the same transaction
          if (next.status === "logged_out") {
            yield* authStates.wipe(row.id)
            yield* messaging.channelGone(row.id, "channel_logged_out")
          }
          if (next.event) {
            yield* events.append({
              customerId: row.customer_id,
              channelId: row.id,
              type: next.event.type,
              data: next.event.data,
              secret: next.event.secret
            })
          }
          if (next.audit) {
            yield* audit.record({
              customerId: row.customer_id,
              actor: system,
              action: next.audit.action,
              resourceType: "channel",
              resourceId: row.id,
              data: next.audit.data
            })
          }
          return {
            outcome: next.stop === true ? ("stop" as const) : ("continue" as const),
            status: next.status
          }
        })
      ).pipe(
        // logged once committed
        Effect.tap(({ status }) =>
          status === undefined ? Effect.void : logChange(fence.channelId, change, status)
        ),
        Effect.map(({ outcome }) => outcome)
      )

    return ChannelLifecycle.of({
      load: Effect.fn("ChannelLifecycle.load")(function* (channelId) {
        const rows = yield* sql`SELECT ${columns} FROM channels WHERE id = ${channelId}`.pipe(
          decodeRows(ChannelRow)
        )
        return rows[0]
      }),
      record: Effect.fn("ChannelLifecycle.record")(record)
    })
  })
)
