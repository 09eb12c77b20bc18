import { type Channel, ChannelId, ChannelStatus, CustomerId } from "@whatisup/domain"
import { Schema } from "effect"
import { type EncryptedColumn, placeIn } from "../crypto/keyRing.ts"

/** A channel as stored; read with `channelColumns`. */
export const ChannelRow = Schema.Struct({
  id: ChannelId,
  customer_id: CustomerId,
  name: Schema.NullOr(Schema.String),
  status: ChannelStatus,
  status_reason: Schema.NullOr(Schema.String),
  desired: Schema.Literals(["running", "stopped"]),
  connect_method: Schema.NullOr(Schema.Literals(["qr", "pairing_code"])),
  pairing_phone_number: Schema.NullOr(Schema.String),
  phone_number: Schema.NullOr(Schema.String),
  qr_ciphertext: Schema.NullOr(Schema.String),
  qr_expires_at: Schema.NullOr(Schema.Date),
  pairing_code_ciphertext: Schema.NullOr(Schema.String),
  last_connected_at: Schema.NullOr(Schema.Date),
  /** Bumped by every connect, logout, restart and delete: a running actor from an older epoch is replaced. */
  run_epoch: Schema.Number,
  /** The epoch of the last logout or delete: actors from before it unlink their device as they stop. */
  unlink_epoch: Schema.Number,
  created_at: Schema.Date,
  updated_at: Schema.Date
})
export type ChannelRow = typeof ChannelRow.Type

/** The columns of `ChannelRow`, for SELECT and RETURNING lists. */
export const channelColumns = `id, customer_id, name, status, status_reason, desired, connect_method,
  pairing_phone_number, phone_number, qr_ciphertext, qr_expires_at, pairing_code_ciphertext,
  last_connected_at, run_epoch::int AS run_epoch, unlink_epoch::int AS unlink_epoch, created_at, updated_at`

/** The QR shown while pairing: its fourth field is the device's adv secret key. */
export const qrColumn: EncryptedColumn = { table: "channels", key: ["id"], column: "qr_ciphertext" }
export const pairingCodeColumn: EncryptedColumn = {
  table: "channels",
  key: ["id"],
  column: "pairing_code_ciphertext"
}
/** Where a channel's QR or pairing code is kept. */
export const qrPlace = (id: ChannelId) => placeIn(qrColumn, [id])
export const pairingCodePlace = (id: ChannelId) => placeIn(pairingCodeColumn, [id])

/** The channel as the API shows it; `pairingCode` is the decrypted code while pairing by code. */
export const renderChannel = (row: ChannelRow, pairingCode: string | null = null): Channel => ({
  id: row.id,
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
