import type { ChannelStatus } from "@whatisup/domain"

/** Every move a channel's status may make; anything else is refused (a 409 where a caller asked for it). */
const transitions: Record<ChannelStatus, ReadonlyArray<ChannelStatus>> = {
  created: ["pairing", "deleted"],
  pairing: ["pairing", "created", "connecting", "connected", "logged_out", "failed", "deleted"],
  connecting: [
    "connecting",
    "connected",
    "reconnecting",
    "pairing",
    "logged_out",
    "failed",
    "suspended",
    "deleted"
  ],
  connected: ["connected", "reconnecting", "connecting", "logged_out", "failed", "suspended", "deleted"],
  reconnecting: [
    "reconnecting",
    "connecting",
    "connected",
    "pairing",
    "logged_out",
    "failed",
    "suspended",
    "deleted"
  ],
  logged_out: ["pairing", "deleted"],
  failed: ["pairing", "deleted"],
  // the customer was suspended while the channel was connected: it connects again on resume
  suspended: ["connecting", "deleted"],
  deleted: []
}

export const canMove = (from: ChannelStatus, to: ChannelStatus) => transitions[from].includes(to)

/** The statuses in which a channel holds (or is getting) a WhatsApp connection. */
export const runningStatuses: ReadonlyArray<ChannelStatus> = [
  "pairing",
  "connecting",
  "connected",
  "reconnecting"
]

export const isRunning = (status: ChannelStatus) => runningStatuses.includes(status)

/** `connect` starts pairing from these. */
export const connectableStatuses: ReadonlyArray<ChannelStatus> = ["created", "logged_out", "failed"]

/** What WhatsApp's disconnect code means for the channel. */
export type DisconnectPolicy =
  | { readonly _tag: "RestartNow" }
  | { readonly _tag: "Backoff" }
  | { readonly _tag: "LoggedOut" }
  | { readonly _tag: "Failed"; readonly reason: string }

export const disconnectPolicy = (code: number): DisconnectPolicy => {
  switch (code) {
    case 515:
      return { _tag: "RestartNow" }
    case 401:
      return { _tag: "LoggedOut" }
    case 403:
      return { _tag: "Failed", reason: "forbidden: WhatsApp refused this account (403)" }
    case 405:
      return {
        _tag: "Failed",
        reason:
          "whatsapp_version_outdated: WhatsApp refused the client version (405); set WHATISUP_WA_VERSION"
      }
    case 411:
      return {
        _tag: "Failed",
        reason: "multidevice_mismatch: the phone's multi-device state does not match (411)"
      }
    case 440:
      // connection replaced: the supervisor decides (stop quietly if the lease went elsewhere, else
      // retry a few times before failing with connection_replaced)
      return { _tag: "Backoff" }
    default:
      // 408, 428, 500, 503 and anything unknown: try again, slower each time
      return { _tag: "Backoff" }
  }
}
