import { Schema } from "effect"
import { PhoneNumber } from "./channels.ts"
import { ChannelId, MessageId } from "./ids.ts"
import { storableText } from "./text.ts"
import { Timestamp } from "./time.ts"
import { Moment } from "./webhooks.ts"

/** The longest text body WhatsApp takes (characters). */
export const maxTextLength = 4096

/** The longest caption of an image, video or document (characters). */
export const maxCaptionLength = 1024

/** The largest file a media link may point to, by kind (bytes): WhatsApp's own limits. */
export const maxMediaBytes = {
  image: 5 * 1024 * 1024,
  video: 16 * 1024 * 1024,
  audio: 16 * 1024 * 1024,
  document: 100 * 1024 * 1024,
  sticker: 500 * 1024
} as const

/** Text a message carries: newlines allowed, broken Unicode and NUL not. */
const MessageText = (minLength: number, maxLength: number, description: string) =>
  Schema.String.pipe(
    Schema.check(
      Schema.isBetweenLength(minLength, maxLength, {
        message: `must be ${minLength} to ${maxLength} characters`
      }),
      Schema.isPattern(storableText, { message: "must not contain NUL characters or broken Unicode" })
    )
  ).annotate({ description })

export const MessageType = Schema.Literals([
  "text",
  "image",
  "video",
  "audio",
  "document",
  "sticker",
  "location",
  "reaction",
  "unsupported"
]).annotate({
  description:
    "What the message holds, named as the field that carries it; unsupported: an inbound kind the gateway does not read yet (its WhatsApp type is in unsupported.whatsapp_type)"
})
export type MessageType = typeof MessageType.Type

export const MessageDirection = Schema.Literals(["outbound", "inbound"]).annotate({
  description: "outbound: sent through the gateway; inbound: received by the channel's phone number"
})
export type MessageDirection = typeof MessageDirection.Type

export const MessageStatus = Schema.Literals([
  "queued",
  "sent",
  "delivered",
  "read",
  "played",
  "failed",
  "received"
]).annotate({
  description:
    "Outbound: queued (accepted, waiting its turn or for the channel to connect) → sent (WhatsApp's server took it) → delivered (it reached the recipient's phone) → read (or played, for a voice note); or failed (see failure). Inbound: received, then read once POST /v1/messages/{id}/read sent the read receipt. A status never moves backwards"
})
export type MessageStatus = typeof MessageStatus.Type

export const MediaLink = Schema.String.pipe(
  Schema.check(
    Schema.isMaxLength(2048, { message: "must be at most 2048 characters" }),
    Schema.isPattern(
      // eslint-disable-next-line no-control-regex -- control characters are what it refuses
      /^https?:\/\/(?:[^\s\u0000-\u001f\u007f-\u009f\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff])+$/iu,
      { message: "must be an absolute http:// or https:// URL, without spaces or control characters" }
    )
  )
).annotate({
  description:
    "Where the gateway fetches the file from when it sends the message: an absolute http(s) URL of a public address (https only on a production gateway), at most 2048 characters. Like webhook URLs, loopback, private, link-local and metadata addresses are refused, redirects are not followed, and a file above the kind's size limit fails the message (media_too_large)",
  examples: ["https://example.com/files/invoice.pdf"]
})

const link = { link: MediaLink }
const caption = {
  caption: Schema.optionalKey(
    MessageText(1, maxCaptionLength, `Text shown under the media, 1 to ${maxCaptionLength} characters`)
  )
}

export const TextContent = Schema.Struct({
  body: MessageText(1, maxTextLength, `The text, 1 to ${maxTextLength} characters; newlines are kept`),
  preview_url: Schema.optionalKey(
    Schema.Boolean.annotate({
      description: "Whether WhatsApp shows a preview of the first URL in the body (default false)"
    })
  )
}).annotate({ description: "A text message", examples: [{ body: "Your order has shipped" }] })

export const ImageContent = Schema.Struct({ ...link, ...caption }).annotate({
  description: `An image (JPEG or PNG, at most ${maxMediaBytes.image / 1024 / 1024} MB)`
})
export const VideoContent = Schema.Struct({ ...link, ...caption }).annotate({
  description: `A video (MP4 or 3GPP, at most ${maxMediaBytes.video / 1024 / 1024} MB)`
})
export const AudioContent = Schema.Struct({
  ...link,
  voice: Schema.optionalKey(
    Schema.Boolean.annotate({
      description:
        "Send as a voice note (push to talk), which reaches played when listened to; the file should be OGG/Opus (default false)"
    })
  )
}).annotate({ description: `An audio file or voice note (at most ${maxMediaBytes.audio / 1024 / 1024} MB)` })
export const DocumentContent = Schema.Struct({
  ...link,
  ...caption,
  filename: Schema.optionalKey(MessageText(1, 240, "The file name the recipient sees, 1 to 240 characters"))
}).annotate({ description: `A document of any type (at most ${maxMediaBytes.document / 1024 / 1024} MB)` })
export const StickerContent = Schema.Struct({ ...link }).annotate({
  description: `A sticker (WebP, at most ${maxMediaBytes.sticker / 1024} KB)`
})

const Latitude = Schema.Finite.pipe(
  Schema.check(
    Schema.isBetween({ minimum: -90, maximum: 90 }, { message: "must be a number from -90 to 90" })
  )
).annotate({ description: "Latitude in degrees, -90 to 90", examples: [52.52] })
const Longitude = Schema.Finite.pipe(
  Schema.check(
    Schema.isBetween({ minimum: -180, maximum: 180 }, { message: "must be a number from -180 to 180" })
  )
).annotate({ description: "Longitude in degrees, -180 to 180", examples: [13.405] })

export const LocationContent = Schema.Struct({
  latitude: Latitude,
  longitude: Longitude,
  name: Schema.optionalKey(MessageText(1, 1000, "The place's name, 1 to 1000 characters")),
  address: Schema.optionalKey(MessageText(1, 1000, "The place's address, 1 to 1000 characters"))
}).annotate({ description: "A location pin" })

export const ReactionContent = Schema.Struct({
  message_id: MessageId.annotate({
    description: "The message reacted to: a msg_ id of this channel, inbound or outbound"
  }),
  emoji: MessageText(0, 32, "The emoji; empty removes the channel's reaction to the message")
}).annotate({
  description: "A reaction to a message",
  examples: [{ message_id: "msg_01m8mdm3h6z9q2w4e6r8t0y2u4", emoji: "👍" } as never]
})

export const MessageContext = Schema.Struct({
  message_id: MessageId.annotate({
    description: "The message replied to (quoted): a msg_ id of this channel, inbound or outbound"
  })
}).annotate({ description: "Makes the message a reply to another" })

const sendFields = {
  to: PhoneNumber.annotate({ description: "The recipient: an E.164 phone number on WhatsApp" }),
  context: Schema.optionalKey(MessageContext)
}

const sendOf = <T extends string, C extends Schema.Top>(type: T, content: C) =>
  Schema.Struct({
    ...sendFields,
    type: Schema.Literal(type).annotate({ description: `${type}: the message carries the field ${type}` }),
    [type]: content
  } as {
    to: typeof sendFields.to
    context: typeof sendFields.context
    type: Schema.Literal<T>
  } & { [K in T]: C })

export const SendMessage = Schema.Union([
  sendOf("text", TextContent),
  sendOf("image", ImageContent),
  sendOf("video", VideoContent),
  sendOf("audio", AudioContent),
  sendOf("document", DocumentContent),
  sendOf("sticker", StickerContent),
  sendOf("location", LocationContent),
  sendOf("reaction", ReactionContent)
]).annotate({
  description:
    "A message to send, shaped like the WhatsApp Cloud API's message object without messaging_product: to, type, and the field named by type",
  examples: [{ to: "+15551234567", type: "text", text: { body: "Your order has shipped" } } as never]
})
export type SendMessage = typeof SendMessage.Type
export type OutboundType = SendMessage["type"]

export const MessageFailure = Schema.Struct({
  reason: Schema.String.annotate({
    description:
      "Why: expired (not sent within WHATISUP_MESSAGE_MAX_AGE), channel_deleted, channel_logged_out, media_fetch_refused (the link's address is not public, or it answered an error), media_too_large, media_upload_failed (WhatsApp did not take the file), whatsapp_error (WhatsApp refused the message: see detail), invalid_reference (the message reacted to is gone)",
    examples: ["expired"]
  }),
  detail: Schema.String.annotate({
    description: "What happened, for a person",
    examples: ["The message was not sent within 24 hours"]
  })
}).annotate({ description: "Why a message failed" })

export const StatusChange = Schema.Struct({
  status: MessageStatus,
  at: Timestamp("When the message reached the status"),
  reason: Schema.NullOr(Schema.String).annotate({ description: "Why, for failed; null otherwise" })
}).annotate({ description: "One step of a message's status history" })

/** What an inbound or outbound message of one kind carried: the fields of its type's object. */
const ContentOut = Schema.Record(Schema.String, Schema.Unknown)

export const Message = Schema.Struct({
  id: MessageId,
  channel_id: ChannelId,
  direction: MessageDirection,
  from: Schema.NullOr(Schema.String).annotate({
    description:
      "The sender, E.164: the channel's number for outbound (null until it has connected), the contact for inbound (in the rare case WhatsApp hides the contact's number, its WhatsApp id, ending @lid)",
    examples: ["+15551234567"]
  }),
  to: Schema.NullOr(Schema.String).annotate({
    description: "The recipient, E.164: the contact for outbound, the channel's number for inbound",
    examples: ["+15557654321"]
  }),
  type: MessageType,
  text: Schema.optionalKey(ContentOut).annotate({ description: "For type text: {body, preview_url?}" }),
  image: Schema.optionalKey(ContentOut).annotate({
    description:
      "For type image (and likewise video, audio, document, sticker): outbound {link, caption?, filename?, voice?}; inbound {mime_type, caption?, filename?, voice?, file_length?, sha256?}, the bytes at GET /v1/messages/{id}/media"
  }),
  video: Schema.optionalKey(ContentOut).annotate({ description: "For type video: as image" }),
  audio: Schema.optionalKey(ContentOut).annotate({
    description: "For type audio: as image, with voice true for a voice note"
  }),
  document: Schema.optionalKey(ContentOut).annotate({
    description: "For type document: as image, with the filename"
  }),
  sticker: Schema.optionalKey(ContentOut).annotate({
    description: "For type sticker: as image, without a caption"
  }),
  location: Schema.optionalKey(ContentOut).annotate({
    description: "For type location: {latitude, longitude, name?, address?}"
  }),
  reaction: Schema.optionalKey(ContentOut).annotate({
    description:
      "For type reaction: {message_id, emoji}; message_id is null for a reaction to a message the gateway does not hold"
  }),
  unsupported: Schema.optionalKey(ContentOut).annotate({
    description: "For type unsupported: {whatsapp_type}, WhatsApp's own name for the kind"
  }),
  context: Schema.NullOr(
    Schema.Struct({
      message_id: Schema.NullOr(MessageId).annotate({
        description: "The quoted message's id, null when the gateway does not hold it"
      }),
      whatsapp_id: Schema.NullOr(Schema.String).annotate({ description: "The quoted message's WhatsApp id" })
    })
  ).annotate({ description: "For a reply: the message it quotes; null otherwise" }),
  whatsapp_id: Schema.String.annotate({
    description:
      "WhatsApp's id of the message; for outbound it is derived from id, so a resend after a crash is the same message",
    examples: ["3EB0A1B2C3D4E5F6A7B8C9D0"]
  }),
  status: MessageStatus,
  failure: Schema.NullOr(MessageFailure).annotate({
    description: "Why the message failed; null unless failed"
  }),
  created_at: Timestamp("When the gateway accepted (outbound) or received (inbound) the message"),
  updated_at: Timestamp("When the status last changed")
}).annotate({ description: "A message sent or received by a channel" })
export type Message = typeof Message.Type

export const MessageWithHistory = Schema.Struct({
  ...Message.fields,
  statuses: Schema.Array(StatusChange).annotate({
    description: "Every status the message went through, oldest first"
  })
}).annotate({ description: "A message with its status history" })
export type MessageWithHistory = typeof MessageWithHistory.Type

export const MessageQuery = {
  direction: Schema.optionalKey(
    MessageDirection.annotate({ description: "Only messages in this direction" })
  ),
  status: Schema.optionalKey(MessageStatus.annotate({ description: "Only messages in this status" })),
  to: Schema.optionalKey(PhoneNumber.annotate({ description: "Only outbound messages to this number" })),
  from: Schema.optionalKey(PhoneNumber.annotate({ description: "Only inbound messages from this number" })),
  since: Schema.optionalKey(Moment("Only messages created at or after this moment")),
  until: Schema.optionalKey(Moment("Only messages created before this moment"))
}
