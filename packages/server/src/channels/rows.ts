import type { Channel, ChannelStatus } from "@whatisup/domain"

export interface ChannelRow {
  readonly id: string
  readonly customer_id: string
  readonly name: string | null
  readonly status: ChannelStatus
  readonly status_reason: string | null
  readonly desired: "running" | "stopped"
  readonly connect_method: "qr" | "pairing_code" | null
  readonly pairing_phone_number: string | null
  readonly phone_number: string | null
  readonly qr_ciphertext: string | null
  readonly qr_expires_at: Date | null
  readonly pairing_code_ciphertext: string | null
  readonly last_connected_at: Date | null
  /** Bumped by every connect, logout, restart and delete: a running actor from an older epoch is replaced. */
  readonly run_epoch: number
  /** The epoch of the last logout or delete: actors from before it unlink their device as they stop. */
  readonly unlink_epoch: number
  readonly created_at: Date
  readonly updated_at: Date
}

/** The channel as the API shows it; `pairingCode` is the decrypted code while pairing by code. */
export const renderChannel = (row: ChannelRow, pairingCode: string | null = null): Channel => ({
  id: row.id as Channel["id"],
  name: row.name,
  status: row.status,
  status_reason: row.status_reason,
  phone_number: row.phone_number,
  pairing_code: row.status === "pairing" ? pairingCode : null,
  last_connected_at: row.last_connected_at?.toISOString() ?? null,
  created_at: row.created_at.toISOString(),
  updated_at: row.updated_at.toISOString()
})

/** Channels whose desired state changed: every gateway's supervisor listens. */
export const channelsChangedChannel = "whatisup_channels_changed"
