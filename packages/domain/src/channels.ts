import { Schema } from "effect"
import { ChannelId } from "./ids.ts"
import { Text } from "./text.ts"
import { OptionalTimestamp, Timestamp } from "./time.ts"

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
    "created (never connected, or resting after an unscanned QR or a suspension while pairing) → pairing (showing a QR or a pairing code) → connecting (logging in) → connected ⇄ reconnecting; logged_out (the phone unlinked it, or POST .../logout) and failed (see status_reason) rest until connected again; suspended: the operator suspended the customer (status_reason customer_suspended), and the channel reconnects when the customer is resumed; deleted is final"
})
export type ChannelStatus = typeof ChannelStatus.Type

export const ChannelName = Text(1, 100).annotate({
  description: "A name to recognise the channel by, 1 to 100 characters",
  examples: ["support"]
})

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
    Schema.isPattern(/^\+[1-9][0-9]{6,14}$/u, {
      message: "must be an E.164 phone number: + then 7 to 15 digits, such as +15551234567"
    })
  )
).annotate({
  description: "An E.164 phone number: + then the country code and number, 7 to 15 digits",
  examples: ["+15551234567"]
})

export const Channel = Schema.Struct({
  id: ChannelId,
  name: Schema.NullOr(Schema.String).annotate({
    description: "The channel's name; null when it has none",
    examples: ["support"]
  }),
  status: ChannelStatus.annotate({ examples: ["connected"] }),
  status_reason: Schema.NullOr(Schema.String).annotate({
    description:
      "Why the channel is in its status, when that needs saying: qr_timeout (nobody scanned the QR over three rounds), pairing_code_timeout (the pairing code was not entered in time: a code gets one round, since each new code pushes a new prompt to the phone; connect again), logged_out_by_phone, logout_requested, connection_replaced, whatsapp_version_outdated, customer_suspended, channel_deleted...",
    examples: [null, "qr_timeout"]
  }),
  phone_number: Schema.NullOr(Schema.String).annotate({
    description: "The WhatsApp number the channel is linked to (E.164), once it has connected",
    examples: ["+15551234567"]
  }),
  pairing_code: Schema.NullOr(Schema.String).annotate({
    description:
      "While pairing by code: the code to type into WhatsApp on the phone (Settings → Linked devices → Link with phone number instead); null otherwise",
    examples: [null, "ABCD1234"]
  }),
  last_connected_at: OptionalTimestamp("When the channel last connected to WhatsApp; null if it never has"),
  created_at: Timestamp("When the channel was created"),
  updated_at: Timestamp("When the channel last changed")
}).annotate({ description: "A WhatsApp phone number linked to the gateway as a companion device" })
export type Channel = typeof Channel.Type

/** A channel as an endpoint answers it, for the examples in /docs. */
export const channelExample = (status: ChannelStatus, statusReason: string | null = null): Channel => ({
  id: "ch_01m8mdm38wdvrz8hr11e5wqsdm" as Channel["id"],
  name: "support",
  status,
  status_reason: statusReason,
  phone_number: status === "created" ? null : "+15551234567",
  pairing_code: null,
  last_connected_at: status === "created" ? null : "2026-11-25T23:59:40.512Z",
  created_at: "2026-11-25T23:59:33.079Z",
  updated_at: "2026-11-25T23:59:48.201Z"
})

export const CreateChannel = Schema.Struct({ name: Schema.optionalKey(ChannelName) }).annotate({
  examples: [{ name: "support" }]
})
export const UpdateChannel = Schema.Struct({ name: ChannelName }).annotate({
  examples: [{ name: "support" }]
})

export const ConnectRequest = Schema.Struct({
  method: Schema.Literals(["qr", "pairing_code"]).annotate({
    description:
      '"qr" to scan a QR code (read it from GET /v1/channels/{id}/qr), or "pairing_code" to type a code into the phone (it comes back in pairing_code)'
  }),
  phone_number: Schema.optionalKey(
    PhoneNumber.annotate({
      description: "With method pairing_code (and only then): the number to pair, in E.164 form"
    })
  )
})
  .annotate({ examples: [{ method: "qr" }, { method: "pairing_code", phone_number: "+15551234567" }] })
  .pipe(
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
  status: ChannelStatus.annotate({
    description: "pairing: the channel is getting its QR or pairing code",
    examples: ["pairing"]
  }),
  pairing_code: Schema.optionalKey(
    Schema.String.annotate({
      description:
        "With method pairing_code, when WhatsApp has sent it in time: the code to type into the phone; otherwise read it from GET /v1/channels/{id}",
      examples: ["ABCD1234"]
    })
  )
}).annotate({ examples: [{ status: "pairing" }, { status: "pairing", pairing_code: "ABCD1234" }] })

export const QrCode = Schema.Struct({
  qr: Schema.String.annotate({
    description:
      "The QR code's content, for a QR library or the simulator's POST /scan; it holds the new device's secret key, so keep it private",
    examples: ["https://wa.me/settings/linked_devices#ref,noise,identity,adv,1"]
  }),
  expires_at: Timestamp("When this code stops working; a new one follows while the channel is pairing")
}).annotate({ description: "The QR code to scan with WhatsApp on the phone (Settings → Linked devices)" })
