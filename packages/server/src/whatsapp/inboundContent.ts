import { proto } from "@whiskeysockets/baileys"

/** A file a message carries, as the API shows it (the bytes are downloaded on demand). */
export interface InboundMedia {
  readonly mime_type: string
  readonly caption?: string
  readonly filename?: string
  /** An audio message recorded as a voice note. */
  readonly voice?: boolean
  /** SHA-256 of the plaintext file, base64, as WhatsApp gives it. */
  readonly sha256?: string
  readonly file_length?: number
}

export type InboundMediaType = "image" | "video" | "audio" | "document" | "sticker"

/** What an inbound message says, shaped like the WhatsApp Cloud API's message object. */
export type InboundBody =
  | { readonly type: "text"; readonly text: { readonly body: string } }
  | { [K in InboundMediaType]: { readonly type: K } & { readonly [P in K]: InboundMedia } }[InboundMediaType]
  | {
      readonly type: "location"
      readonly location: {
        readonly latitude: number
        readonly longitude: number
        readonly name?: string
        readonly address?: string
      }
    }
  /** `emoji` is empty when the sender removed their reaction. */
  | { readonly type: "reaction"; readonly reaction: { readonly message_id: string; readonly emoji: string } }
  /** A kind the gateway does not read yet, named by its `proto.Message` field (e.g. `pollCreationMessage`). */
  | { readonly type: "unsupported"; readonly unsupported: { readonly whatsapp_type: string } }

/** An inbound message as the API shows it: a reply names the WhatsApp id of the message it quotes. */
export type InboundDescription = InboundBody & { readonly context?: { readonly whatsapp_id: string } }

/** Fields that wrap the real message: disappearing, view-once, a document sent with a caption. */
const wrappers = [
  "ephemeralMessage",
  "viewOnceMessage",
  "viewOnceMessageV2",
  "viewOnceMessageV2Extension",
  "documentWithCaptionMessage"
] as const

/** Fields that ride along with any message and say nothing of its kind. */
const companions = new Set(["senderKeyDistributionMessage", "messageContextInfo"])

const mediaFields: Record<string, InboundMediaType> = {
  imageMessage: "image",
  videoMessage: "video",
  ptvMessage: "video",
  audioMessage: "audio",
  documentMessage: "document",
  stickerMessage: "sticker"
}

/** The message inside its wrappers (bounded: a wrapper holds one message, nesting is shallow). */
export const unwrapMessage = (message: proto.IMessage): proto.IMessage => {
  let current = message
  for (let depth = 0; depth < 5; depth++) {
    const wrapper = wrappers.find((field) => current[field]?.message != null)
    if (wrapper === undefined) return current
    current = current[wrapper]!.message!
  }
  return current
}

/** The `proto.Message` field that holds the message's content, e.g. `imageMessage`; undefined when none is set. */
export const contentField = (message: proto.IMessage): string | undefined =>
  Object.keys(message).find(
    (field) => !companions.has(field) && message[field as keyof proto.IMessage] != null
  )

/** The message as a plain object with only the fields it has (a decoded message answers defaults for the others). */
export const plainMessage = (content: Uint8Array | proto.IMessage): proto.IMessage =>
  proto.Message.toObject(
    content instanceof Uint8Array ? proto.Message.decode(content) : proto.Message.fromObject(content),
    { longs: Number }
  )

const media = (file: {
  readonly mimetype?: string | null
  readonly caption?: string | null
  readonly fileName?: string | null
  readonly ptt?: boolean | null
  readonly fileSha256?: Uint8Array | null
  readonly fileLength?: number | null
}): InboundMedia => ({
  mime_type: file.mimetype ?? "application/octet-stream",
  ...(file.caption ? { caption: file.caption } : {}),
  ...(file.fileName ? { filename: file.fileName } : {}),
  ...(file.ptt ? { voice: true } : {}),
  ...(file.fileSha256?.length ? { sha256: Buffer.from(file.fileSha256).toString("base64") } : {}),
  ...(file.fileLength != null ? { file_length: Number(file.fileLength) } : {})
})

const bodyOf = (message: proto.IMessage, field: string | undefined): InboundBody => {
  if (field === "conversation") return { type: "text", text: { body: message.conversation ?? "" } }
  if (field === "extendedTextMessage") {
    return { type: "text", text: { body: message.extendedTextMessage?.text ?? "" } }
  }
  const mediaType = field === undefined ? undefined : mediaFields[field]
  if (mediaType !== undefined) {
    const file = media(message[field as keyof proto.IMessage] as Parameters<typeof media>[0])
    return { type: mediaType, [mediaType]: file } as InboundBody
  }
  if (field === "locationMessage") {
    const location = message.locationMessage!
    return {
      type: "location",
      location: {
        latitude: location.degreesLatitude ?? 0,
        longitude: location.degreesLongitude ?? 0,
        ...(location.name ? { name: location.name } : {}),
        ...(location.address ? { address: location.address } : {})
      }
    }
  }
  if (field === "reactionMessage") {
    const reaction = message.reactionMessage!
    return { type: "reaction", reaction: { message_id: reaction.key?.id ?? "", emoji: reaction.text ?? "" } }
  }
  return { type: "unsupported", unsupported: { whatsapp_type: field ?? "unknown" } }
}

/**
 * What a WhatsApp message says, in the API's shape, and whether it carries a file to download. Pure:
 * the stored `proto.Message` bytes (or the message) in, the description out. A kind not read yet is
 * `unsupported` under its own name, so nothing is silently dropped.
 */
export const describeInbound = (
  content: Uint8Array | proto.IMessage
): { readonly message: InboundDescription; readonly hasMedia: boolean } => {
  const message = unwrapMessage(plainMessage(content))
  const field = contentField(message)
  const body = bodyOf(message, field)
  const inner = field === undefined ? undefined : message[field as keyof proto.IMessage]
  const fields = typeof inner === "object" && inner !== null ? (inner as Record<string, unknown>) : {}
  const quoted = (fields.contextInfo as proto.IContextInfo | null | undefined)?.stanzaId
  const hasMedia =
    field !== undefined &&
    field in mediaFields &&
    fields.mediaKey != null &&
    (fields.directPath != null || fields.url != null)
  return { message: quoted ? { ...body, context: { whatsapp_id: quoted } } : body, hasMedia }
}
