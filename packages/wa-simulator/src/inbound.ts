import {
  extractE2ESessionFromRetryReceipt,
  getBinaryNodeChild,
  jidDecode,
  proto,
  type BinaryNode
} from "@whiskeysockets/baileys"
import { randomBytes } from "node:crypto"
import { issueDeviceBundle, pnJid, type Account, type Accounts } from "./accounts.ts"
import type { SimulatorLogger } from "./logger.ts"
import type { Mailbox } from "./mailbox.ts"
import { encryptMedia, type MediaHost, type MediaKind } from "./media.ts"
import { encryptForDevice, hasSession, signalBundle, type SignalBundle } from "./phone-keys.ts"

/** A file a simulated phone sends: encrypted and hosted by the simulator's media host. */
export interface MediaDelivery {
  readonly kind: MediaKind
  readonly bytes: Uint8Array
  readonly mimetype: string
  readonly fileName?: string
  readonly caption?: string
  /** An audio recorded as a voice note (`audioMessage.ptt`). */
  readonly ptt?: boolean
}

/**
 * How the simulated phone sends to linked devices: Signal-encrypted to each of them, as WhatsApp
 * does (`<enc type="pkmsg">` in a new session, `msg` in an established one), or as `<plaintext>`.
 */
export type Encryption = "signal" | "plaintext"

/**
 * An inbound message the simulated phone of `from` sends to a phone number's linked devices:
 * `message` as it is, or `media`, encrypted and hosted, as the message of its kind.
 */
export interface Delivery {
  readonly from: string
  readonly message?: proto.IMessage
  readonly media?: MediaDelivery
  readonly id?: string
  /** `signal` unless told. */
  readonly encryption?: Encryption
  /**
   * How many times each device gets the message (1 unless told), each copy once the device
   * acknowledged the one before (or at its next login). A plaintext copy is the very same stanza;
   * an encrypted one is the same message (id, content) encrypted again, as a phone that sends it
   * again does: a Signal message key opens one ciphertext once, so the very same ciphertext would
   * not decrypt a second time.
   */
  readonly copies?: number
}

export interface DeliveryResult {
  readonly id: string
  /** Open connections the (first copy of the) message went to. */
  readonly devices: number
  /** Whether some linked device was offline: it gets the message at its next login. */
  readonly queued: boolean
}

/** The wire type attribute Baileys gives a message of this content. */
const stanzaType = (message: proto.IMessage) => {
  if (message.reactionMessage) return "reaction"
  if (message.pollCreationMessage || message.pollCreationMessageV2 || message.pollCreationMessageV3) {
    return "poll"
  }
  return mediaType(message) ? "media" : "text"
}

/** The `mediatype` attribute Baileys puts on the `<enc>` of a media message. */
const mediaType = (message: proto.IMessage): string | undefined => {
  if (message.imageMessage) return "image"
  if (message.videoMessage) return message.videoMessage.gifPlayback ? "gif" : "video"
  if (message.audioMessage) return message.audioMessage.ptt ? "ptt" : "audio"
  if (message.documentMessage) return "document"
  if (message.stickerMessage) return "sticker"
  if (message.contactMessage) return "vcard"
  if (message.contactsArrayMessage) return "contact_array"
  return undefined
}

const now = () => Math.floor(Date.now() / 1000)

/** What a phone sent, by sender and id: what it encrypts again when a device asks with a retry receipt. */
interface Sent {
  readonly message: proto.IMessage
  readonly t: number
}

/**
 * Messages the simulated phones send to linked devices: encrypted per device with the phone's
 * Signal sessions (opened from the device's uploaded pre-keys), held by the server until the device
 * acknowledges them, sent again (encrypted anew) when a device asks with a retry receipt.
 * `phoneWork` runs the phones' Signal work one job at a time: a chain cannot be used out of order.
 */
export const makeInbound = (options: {
  readonly accounts: Accounts
  readonly mailbox: Mailbox
  readonly logger: SimulatorLogger
  readonly media: MediaHost | undefined
  readonly phoneWork: <A>(job: () => Promise<A>) => Promise<A>
}) => {
  const { accounts, mailbox, logger, phoneWork } = options
  const sent = new Map<string, Sent>()
  const sentKey = (from: string, id: string) => `${from}/${id}`

  const envelope = (
    sender: Account,
    id: string,
    message: proto.IMessage,
    t: number,
    payload: BinaryNode
  ) => ({
    tag: "message",
    attrs: {
      from: pnJid(sender.phoneNumber),
      id,
      type: stanzaType(message),
      t: String(t),
      notify: sender.pushName
    },
    content: [payload]
  })

  /** The phone's ciphertext of `message` for one device, in its session with it (opened if need be). */
  const encrypted = async (
    sender: Account,
    recipient: Account,
    deviceId: number,
    message: proto.IMessage,
    extra: Record<string, string>,
    bundle?: SignalBundle
  ): Promise<BinaryNode> => {
    const address = { user: recipient.phoneNumber, device: deviceId }
    const device = recipient.devices.get(deviceId)
    const opening =
      bundle ??
      (device && !hasSession(sender.phoneKeys, address) ? signalBundle(issueDeviceBundle(device)) : undefined)
    const { type, ciphertext } = await encryptForDevice(sender.phoneKeys, address, message, opening)
    const media = mediaType(message)
    return {
      tag: "enc",
      attrs: { v: "2", type, ...(media ? { mediatype: media } : {}), ...extra },
      content: ciphertext
    }
  }

  /** Posts `copies` copies, one after the other is acknowledged; returns the open connections the first went to. */
  const postCopies = async (
    sender: Account,
    recipient: Account,
    deviceId: number,
    id: string,
    { message, t }: Sent,
    encryption: Encryption,
    copies: number
  ): Promise<number> => {
    const payload =
      encryption === "plaintext"
        ? { tag: "plaintext", attrs: {}, content: proto.Message.encode(message).finish() }
        : await encrypted(sender, recipient, deviceId, message, {})
    const next =
      copies > 1
        ? () => {
            phoneWork(() =>
              postCopies(sender, recipient, deviceId, id, { message, t }, encryption, copies - 1)
            ).catch((error: unknown) =>
              logger.warn({ id, error: String(error) }, "the simulated phone could not send a copy again")
            )
          }
        : undefined
    return mailbox.post(recipient.phoneNumber, deviceId, envelope(sender, id, message, t, payload), next)
  }

  /** The simulated phone of `delivery.from` sends a message to every linked device of `toPhoneNumber`. */
  const deliver = async (toPhoneNumber: string, delivery: Delivery): Promise<DeliveryResult> => {
    const recipient = accounts.get(toPhoneNumber)
    if (!recipient || recipient.devices.size === 0) {
      throw new Error(`${toPhoneNumber} has no linked device to deliver to`)
    }
    const copies = delivery.copies ?? 1
    if (!Number.isInteger(copies) || copies < 1) throw new Error("copies must be at least 1")
    const id = delivery.id ?? `3EB0${randomBytes(8).toString("hex").toUpperCase()}`
    const sender = accounts.getOrCreate(delivery.from, delivery.from)
    const message = delivery.media ? mediaMessage(delivery.media) : delivery.message
    if (!message) throw new Error("a delivery needs a message or media")
    const original = { message, t: now() }
    sent.set(sentKey(sender.phoneNumber, id), original)
    const encryption = delivery.encryption ?? "signal"
    return phoneWork(async () => {
      let devices = 0
      let queued = false
      for (const deviceId of recipient.devices.keys()) {
        const online = await postCopies(sender, recipient, deviceId, id, original, encryption, copies)
        devices += online
        if (online === 0) queued = true
      }
      return { id, devices, queued }
    })
  }

  /**
   * A linked device could not decrypt what a phone sent it and asks again (`<receipt type="retry">`
   * to that phone): the phone encrypts the same message again for that device (in a new session
   * when the receipt carries the device's keys, as Baileys' does from its second retry), with the
   * retry count on the `<enc>`. Nothing when the phone never sent that id.
   */
  const onRetryReceipt = (device: { phoneNumber: string; deviceId: number }, node: BinaryNode) => {
    const senderNumber = jidDecode(node.attrs.to ?? "")?.user
    const id = node.attrs.id ?? ""
    const original = senderNumber ? sent.get(sentKey(senderNumber, id)) : undefined
    const sender = senderNumber ? accounts.get(senderNumber) : undefined
    const recipient = accounts.get(device.phoneNumber)
    if (!original || !sender || !recipient?.devices.has(device.deviceId)) return
    const count = getBinaryNodeChild(node, "retry")?.attrs.count ?? "1"
    const keys = extractE2ESessionFromRetryReceipt(node) ?? undefined
    phoneWork(async () => {
      const enc = await encrypted(sender, recipient, device.deviceId, original.message, { count }, keys)
      mailbox.post(
        device.phoneNumber,
        device.deviceId,
        envelope(sender, id, original.message, original.t, enc)
      )
    }).catch((error: unknown) =>
      logger.warn({ id, error: String(error) }, "the simulated phone could not answer a retry receipt")
    )
  }

  /** Encrypts a file as a phone would, stores it on the media host and describes it as a message. */
  const mediaMessage = (file: MediaDelivery): proto.IMessage => {
    if (!options.media) throw new Error("the simulator has no media host")
    const encrypted = encryptMedia(file.bytes, file.kind)
    const directPath = options.media.store(encrypted.encrypted)
    const content = {
      url: `https://${options.media.hostname}${directPath}`,
      directPath,
      mediaKey: encrypted.mediaKey,
      mediaKeyTimestamp: now(),
      mimetype: file.mimetype,
      fileSha256: encrypted.fileSha256,
      fileEncSha256: encrypted.fileEncSha256,
      fileLength: file.bytes.length
    }
    const caption = file.caption === undefined ? {} : { caption: file.caption }
    switch (file.kind) {
      case "image":
        return { imageMessage: { ...content, ...caption } }
      case "video":
        return { videoMessage: { ...content, ...caption } }
      case "audio":
        return { audioMessage: { ...content, ...(file.ptt ? { ptt: true } : {}) } }
      case "sticker":
        return { stickerMessage: content }
      case "document":
        return {
          documentMessage: {
            ...content,
            ...caption,
            ...(file.fileName === undefined ? {} : { fileName: file.fileName })
          }
        }
    }
  }

  return { deliver, onRetryReceipt }
}

export type Inbound = ReturnType<typeof makeInbound>
