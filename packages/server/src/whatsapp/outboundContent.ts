import {
  type AnyMessageContent,
  extractUrlFromText,
  generateWAMessageContent,
  jidNormalizedUser,
  proto,
  type WAMediaUploadFunction
} from "@whiskeysockets/baileys"
import type { ILogger } from "@whiskeysockets/baileys/lib/Utils/logger.js"
import type { OutboundContent, WaKey } from "../channels/transport.ts"
import { contentField, plainMessage, unwrapMessage } from "./inboundContent.ts"

/** `+15551234567` → `15551234567@s.whatsapp.net` */
export const jidOf = (phoneNumber: string) => `${phoneNumber.replace(/^\+/, "")}@s.whatsapp.net`

/** `15551234567:12@s.whatsapp.net` → `+15551234567` */
export const phoneOf = (jid: string | undefined) => (jid ? `+${jid.split(/[:@]/)[0]}` : "")

const keyOf = (key: WaKey) => ({ remoteJid: jidOf(key.chat), fromMe: key.fromMe, id: key.id })

/** What Baileys builds the message from; text is built here (no link is fetched: see below). */
const baileysContent = (content: Exclude<OutboundContent, { readonly type: "text" }>): AnyMessageContent => {
  switch (content.type) {
    case "image":
    case "video":
      return {
        [content.type]: Buffer.from(content.bytes),
        mimetype: content.mimetype,
        ...(content.caption === undefined ? {} : { caption: content.caption })
      } as AnyMessageContent
    case "sticker":
      return { sticker: Buffer.from(content.bytes), mimetype: content.mimetype }
    case "audio":
      return { audio: Buffer.from(content.bytes), mimetype: content.mimetype, ptt: content.voice }
    case "document":
      return {
        document: Buffer.from(content.bytes),
        mimetype: content.mimetype,
        ...(content.filename === undefined ? {} : { fileName: content.filename }),
        ...(content.caption === undefined ? {} : { caption: content.caption })
      }
    case "location":
      return {
        location: {
          degreesLatitude: content.latitude,
          degreesLongitude: content.longitude,
          ...(content.name === undefined ? {} : { name: content.name }),
          ...(content.address === undefined ? {} : { address: content.address })
        }
      }
    case "reaction":
      return { react: { key: keyOf(content.target), text: content.emoji } }
  }
}

/**
 * The message a reply quotes, as WhatsApp shows it in the reply: its content alone, without its own
 * context (Baileys' own `quoted` does the same); undefined when the quoted content is not known.
 */
const quotedMessage = (content: Uint8Array | undefined): proto.IMessage | undefined => {
  if (content === undefined) return undefined
  const message = unwrapMessage(plainMessage(content))
  const field = contentField(message)
  if (field === undefined) return undefined
  const inner = message[field as keyof proto.IMessage]
  return {
    [field]: typeof inner === "object" && inner !== null ? { ...inner, contextInfo: undefined } : inner
  }
}

/**
 * The WhatsApp message (`proto.Message`) for what the gateway sends; media are encrypted and
 * uploaded through `upload`. Plain text is an `extendedTextMessage`, as WhatsApp Web sends it; with
 * `previewUrl`, the link it holds is marked for the phone, but no preview is fetched here (a fetch
 * would have to go through the SSRF guard).
 */
export const buildMessage = async (
  content: OutboundContent,
  options: { readonly upload: WAMediaUploadFunction; readonly ownJid: string; readonly logger?: ILogger }
): Promise<proto.Message> => {
  const url = content.type === "text" && content.previewUrl ? extractUrlFromText(content.body) : undefined
  const message =
    content.type === "text"
      ? proto.Message.create({
          extendedTextMessage: {
            text: content.body,
            ...(url === undefined
              ? {}
              : { matchedText: url, previewType: proto.Message.ExtendedTextMessage.PreviewType.NONE })
          }
        })
      : await generateWAMessageContent(baileysContent(content), {
          upload: options.upload,
          ...(options.logger === undefined ? {} : { logger: options.logger })
        })
  if (content.quoted !== undefined) {
    const field = contentField(message) as keyof proto.IMessage | undefined
    const inner = field === undefined ? undefined : message[field]
    if (typeof inner === "object" && inner !== null) {
      const { key } = content.quoted
      const quoted = quotedMessage(content.quoted.content)
      Object.assign(inner, {
        contextInfo: {
          stanzaId: key.id,
          participant: key.fromMe ? jidNormalizedUser(options.ownJid) : jidOf(key.chat),
          ...(quoted === undefined ? {} : { quotedMessage: quoted })
        }
      })
    }
  }
  return message
}
