import { Schema } from "effect"
import { ChannelId } from "./ids.ts"
import { Text } from "./text.ts"

export const ChannelStatus = Schema.Literals([
  "created",
  "pairing",
  "connecting",
  "connected",
  "reconnecting",
  "logged_out",
  "failed",
  "suspended",
  "deleted"
]).annotate({
  description:
    "created → pairing → connecting → connected ⇄ reconnecting; logged_out and failed end a connection; suspended: the customer is suspended, and the channel reconnects when it is resumed"
})
export type ChannelStatus = typeof ChannelStatus.Type

export const ChannelName = Text(1, 100)

/** Connects, restarts and logouts one channel may be asked for in any minute, whatever the plan: no reconnect storms. */
export const lifecycleOperationsPerMinute = 6

/**
 * Channel creates, deletes, connects, restarts and logouts a customer may ask for in any minute, all
 * channels together: as many as its plan's channels could each ask for, so that creating and deleting
 * channels in a loop opens no more WhatsApp connections than pacing allows the channels it may have.
 */
export const customerLifecycleOperationsPerMinute = (maxChannels: number) =>
  lifecycleOperationsPerMinute * maxChannels

export const PhoneNumber = Schema.String.pipe(
  Schema.check(
    Schema.isPattern(/^\+[1-9][0-9]{6,14}$/, {
      message: "must be an E.164 phone number: + then 7 to 15 digits, such as +15551234567"
    })
  )
)

export const Channel = Schema.Struct({
  id: ChannelId,
  name: Schema.NullOr(Schema.String),
  status: ChannelStatus,
  status_reason: Schema.NullOr(Schema.String).annotate({
    description:
      "why the channel has its status, such as qr_timeout (nobody scanned the QR over three rounds), pairing_code_timeout (the pairing code was not entered in time: a code gets one round, since each new code pushes a new prompt to the phone), logout_requested, logged_out_by_phone, customer_suspended or connection_replaced; connect again after a timeout"
  }),
  phone_number: Schema.NullOr(Schema.String),
  pairing_code: Schema.NullOr(Schema.String).annotate({
    description: "while pairing by code: the code to type into WhatsApp on the phone (Linked devices)"
  }),
  last_connected_at: Schema.NullOr(Schema.String),
  created_at: Schema.String,
  updated_at: Schema.String
})
export type Channel = typeof Channel.Type

export const CreateChannel = Schema.Struct({ name: Schema.optionalKey(ChannelName) })
export const UpdateChannel = Schema.Struct({ name: ChannelName })

export const ConnectRequest = Schema.Struct({
  method: Schema.Literals(["qr", "pairing_code"]).annotate({
    description: '"qr" to scan a code, or "pairing_code" to type a code into the phone'
  }),
  phone_number: Schema.optionalKey(
    PhoneNumber.annotate({ description: "the number to pair, with method pairing_code" })
  )
}).pipe(
  Schema.check(
    Schema.makeFilter((request) =>
      request.method === "pairing_code" && request.phone_number === undefined
        ? { path: ["phone_number"], issue: "is required with method pairing_code" }
        : request.method === "qr" && request.phone_number !== undefined
          ? { path: ["phone_number"], issue: "is only for method pairing_code" }
          : undefined
    )
  )
)
export type ConnectRequest = typeof ConnectRequest.Type

export const ConnectAccepted = Schema.Struct({
  status: ChannelStatus,
  pairing_code: Schema.optionalKey(Schema.String)
})

export const QrCode = Schema.Struct({ qr: Schema.String, expires_at: Schema.String })
