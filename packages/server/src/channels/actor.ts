import { Data, Effect, Exit, Queue } from "effect"
import { AuthStates } from "./loginStore.ts"
import { type PairingMethod, type TransportConnection, WhatsAppTransport } from "./transport.ts"
import type { Fence, LeaseLost } from "./leases.ts"
import { Change, ChannelLifecycle } from "./lifecycle.ts"
import type { ChannelRow } from "./rows.ts"
import { disconnectPolicy, isRunning } from "./status.ts"

/** The connection ended in a way that calls for connecting again, at once or after a pause. */
export class Disconnected extends Data.TaggedError("Disconnected")<{
  readonly code: number
  readonly reason: string
  readonly retry: "now" | "backoff"
  /** Whether this connection had logged in before it ended. */
  readonly wasOpen: boolean
}> {}

const pairingOf = (row: ChannelRow): PairingMethod =>
  row.connect_method === "pairing_code" && row.pairing_phone_number !== null
    ? { method: "pairing_code", phoneNumber: row.pairing_phone_number }
    : { method: "qr" }

/**
 * As the actor stops: a channel logged out or deleted since it started unlinks its device; a
 * connection closed by the gateway itself (restart, shutdown, handover) is reported as a disconnect.
 */
const onStop = (fence: Fence, epoch: number, connection: TransportConnection, interrupted: boolean) =>
  Effect.gen(function* () {
    const lifecycle = yield* ChannelLifecycle
    const row = yield* lifecycle.load(fence.channelId)
    if (row !== undefined && row.unlink_epoch > epoch) {
      yield* connection.logout.pipe(Effect.timeout("5 seconds"), Effect.ignore)
    } else if (interrupted) {
      yield* lifecycle
        .record(
          fence,
          Change.Disconnected({ code: 0, reason: "closed by the gateway (restart or handover)" })
        )
        .pipe(Effect.ignore)
    }
  }).pipe(Effect.timeout("10 seconds"), Effect.ignore)

/**
 * One life of a channel's actor: it owns the WhatsApp connection, inside its own scope, and turns
 * what the connection says into fenced status changes. It returns when the channel should no longer
 * run; it fails with `Disconnected` when the connection should be made again.
 */
export const runChannel = (fence: Fence, epoch: number) =>
  Effect.scoped(
    Effect.gen(function* () {
      const lifecycle = yield* ChannelLifecycle
      const transport = yield* WhatsAppTransport
      const authStates = yield* AuthStates
      const row = yield* lifecycle.load(fence.channelId)
      if (row === undefined || row.desired !== "running" || !isRunning(row.status)) return "stopped" as const
      if ((yield* lifecycle.record(fence, Change.Starting())) === "stop") return "stopped" as const

      const connection = yield* transport
        .connect({
          channelId: fence.channelId,
          pairing: pairingOf(row),
          authState: authStates.forChannel(fence)
        })
        .pipe(
          Effect.catchTag("TransportError", (error) =>
            error.retryable
              ? Effect.fail<Disconnected | LeaseLost>(
                  new Disconnected({ code: 0, reason: error.reason, retry: "backoff", wasOpen: false })
                )
              : Effect.as(lifecycle.record(fence, Change.Failed({ reason: error.reason })), null)
          )
        )
      if (connection === null) return "stopped" as const
      yield* Effect.addFinalizer((exit) => onStop(fence, epoch, connection, Exit.hasInterrupts(exit)))

      let wasOpen = false
      for (;;) {
        const event = yield* Queue.take(connection.events)
        switch (event._tag) {
          case "Qr":
            if ((yield* lifecycle.record(fence, Change.Qr(event))) === "stop") return "stopped" as const
            break
          case "PairingCode":
            if ((yield* lifecycle.record(fence, Change.PairingCode(event))) === "stop")
              return "stopped" as const
            break
          case "Open":
            wasOpen = true
            if ((yield* lifecycle.record(fence, Change.Connected(event))) === "stop")
              return "stopped" as const
            break
          case "Close": {
            const policy = disconnectPolicy(event.code)
            switch (policy._tag) {
              case "LoggedOut":
                yield* lifecycle.record(fence, Change.LoggedOut({ code: event.code }))
                return "stopped" as const
              case "Failed":
                yield* lifecycle.record(fence, Change.Failed({ reason: policy.reason }))
                return "stopped" as const
              default: {
                const reason = event.reason || `disconnected (${event.code})`
                if (
                  (yield* lifecycle.record(fence, Change.Disconnected({ code: event.code, reason }))) ===
                  "stop"
                ) {
                  return "stopped" as const
                }
                return yield* new Disconnected({
                  code: event.code,
                  reason,
                  retry: policy._tag === "RestartNow" ? "now" : "backoff",
                  wasOpen
                })
              }
            }
          }
          default:
            // acks, receipts and inbound messages belong to the outbox and inbox, which come with messages
            break
        }
      }
    })
  )
