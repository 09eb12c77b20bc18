import { Data, Effect, FiberSet, Queue } from "effect"
import type { Fence, LeaseLost } from "./leases.ts"
import { Change, ChannelLifecycle } from "./lifecycle.ts"
import { AuthStates } from "./loginStore.ts"
import { ChannelMessaging } from "./messaging.ts"
import type { ChannelRow } from "./rows.ts"
import { disconnectPolicy, isRunning } from "./status.ts"
import { makeStatusReports } from "./statusReports.ts"
import { type PairingMethod, WhatsAppTransport } from "./transport.ts"

/** The connection ended in a way that calls for connecting again, at once or after a pause. */
export class Disconnected extends Data.TaggedError("Disconnected")<{
  readonly code: number
  readonly reason: string
  readonly retry: "now" | "backoff"
  /** Whether this connection had logged in before it ended. */
  readonly wasOpen: boolean
  /** The channel was still pairing when it ended (no scan or code entered yet). */
  readonly whilePairing: boolean
}> {}

/**
 * Why the supervisor stops an actor, read by the actor's finalizers: `unlink` logs the device out
 * first (logout, delete); `lease_lost` closes the socket and touches nothing else (the channel may
 * be someone else's); the others close the socket, then record the disconnect.
 */
export type StopIntent = "unlink" | "restart" | "handover" | "shutdown" | "lease_lost"

/**
 * What the supervisor tells a running actor: why it is being stopped, whether its lease still holds,
 * and whether a pairing that ends unscanned now ends pairing altogether.
 */
export interface StopCell {
  stopping: StopIntent | null
  readonly holdsLease: () => boolean
  lastPairingRound: boolean
}

const stopReasons: Record<Exclude<StopIntent, "unlink" | "lease_lost">, string> = {
  restart: "restart_requested: the channel was restarted",
  handover: "handover: another gateway process runs the channel now",
  shutdown: "gateway_stopping: the gateway process is shutting down"
}

const pairingOf = (row: ChannelRow): PairingMethod =>
  row.connect_method === "pairing_code" && row.pairing_phone_number !== null
    ? { method: "pairing_code", phoneNumber: row.pairing_phone_number }
    : { method: "qr" }

/**
 * One life of a channel's actor: it owns the WhatsApp connection, inside its own scope, and turns
 * what the connection says into fenced status changes. It returns when the channel should no longer
 * run; it fails with `Disconnected` when the connection should be made again. As it stops, the
 * socket closes before any database work, and only while the lease is still its own.
 */
export const runChannel = (fence: Fence, cell: StopCell) =>
  Effect.scoped(
    Effect.gen(function* () {
      const lifecycle = yield* ChannelLifecycle
      const transport = yield* WhatsAppTransport
      const messaging = yield* ChannelMessaging
      const authStates = yield* AuthStates
      const row = yield* lifecycle.load(fence.channelId)
      if (row === undefined || row.desired !== "running" || !isRunning(row.status)) return "stopped" as const
      if ((yield* lifecycle.record(fence, Change.Starting())) === "stop") return "stopped" as const

      // runs last, after the socket is closed: the disconnect the gateway itself caused
      yield* Effect.addFinalizer(() => {
        const intent = cell.stopping
        return intent === null || intent === "unlink" || intent === "lease_lost"
          ? Effect.void
          : lifecycle
              .record(fence, Change.Disconnected({ code: 0, reason: stopReasons[intent] }))
              .pipe(Effect.timeout("10 seconds"), Effect.ignore)
      })

      // the outbox's fibers, made before the socket so that they are interrupted after it has closed:
      // one stuck on a database that hangs must not hold the socket open past the lease
      const background = yield* FiberSet.make()
      // acks and receipts, applied in batches in the order they came; a receipt is acknowledged to
      // WhatsApp only once its batch is stored
      const reports = yield* makeStatusReports((batch) => messaging.report(fence, batch), background)
      const connection = yield* transport
        .connect({
          channelId: fence.channelId,
          pairing: pairingOf(row),
          authState: authStates.forChannel(fence),
          holdsLease: cell.holdsLease,
          actor: cell,
          // placeholders until the inbox and outbox land
          storeInbound: (messages) => messaging.storeInbound(fence.channelId, messages),
          storeReceipts: reports.store,
          sentContent: (whatsappId) => messaging.sentContent(fence.channelId, whatsappId)
        })
        .pipe(
          Effect.catchTag("TransportError", (error) =>
            error.retryable
              ? Effect.fail<Disconnected | LeaseLost>(
                  new Disconnected({
                    code: 0,
                    reason: error.reason,
                    retry: "backoff",
                    wasOpen: false,
                    whilePairing: false
                  })
                )
              : Effect.as(lifecycle.record(fence, Change.Failed({ reason: error.reason })), null)
          )
        )
      if (connection === null) return "stopped" as const
      // runs first, while the socket is still open: a logged-out or deleted channel unlinks its device
      yield* Effect.addFinalizer(() =>
        cell.stopping === "unlink"
          ? connection.logout.pipe(Effect.timeout("5 seconds"), Effect.ignore)
          : Effect.void
      )

      let wasOpen = false
      let pairing = row.status === "pairing"
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
            pairing = false
            if ((yield* lifecycle.record(fence, Change.Connected(event))) === "stop")
              return "stopped" as const
            // the outbox drains while this connection lasts
            yield* FiberSet.run(background, messaging.drain(fence, connection, cell.holdsLease))
            break
          case "ServerAck":
            reports.offer({ _tag: "ServerAck", whatsappId: event.messageId, error: event.error })
            break
          case "Receipt":
            reports.offer({ _tag: "Receipt", whatsappId: event.messageId, receipt: event.receipt })
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
                // each round by code asks WhatsApp for a new code, a new prompt on the phone: one round only
                const byCode = row.connect_method === "pairing_code"
                if (pairing && event.code !== 515 && (byCode || cell.lastPairingRound)) {
                  // nobody paired in the last round: one event says the round ended and pairing with it
                  yield* lifecycle.record(
                    fence,
                    Change.PairingTimeout({
                      code: event.code,
                      reason: byCode ? "pairing_code_timeout" : "qr_timeout"
                    })
                  )
                  return "stopped" as const
                }
                const reason = event.reason || `disconnected (${event.code})`
                // a 440 with the lease gone is the new owner taking over: the record is fenced off
                // (LeaseLost) and the actor stops quietly
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
                  wasOpen,
                  whilePairing: pairing && event.code !== 515
                })
              }
            }
          }
          default:
            break
        }
      }
    })
  )
