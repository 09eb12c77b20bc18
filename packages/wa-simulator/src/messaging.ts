import {
  getBinaryNodeChild,
  getBinaryNodeChildren,
  jidDecode,
  KEY_BUNDLE_TYPE,
  proto,
  type BinaryNode
} from "@whiskeysockets/baileys"
import { randomBytes } from "node:crypto"
import { lidJid, pnJid, type Account, type Accounts } from "./accounts.ts"
import type { Connection } from "./connection.ts"
import { iqResult } from "./iq.ts"
import type { SimulatorLogger } from "./logger.ts"
import { decryptMedia, encryptMedia, type MediaHost, type MediaKind } from "./media.ts"
import { decryptForPhone, issueBundle, type Bundle } from "./phone-keys.ts"

/** What the network does with one step after a message reaches the server: as usual, never, or later. */
export type ReceiptStep = "normal" | "drop" | { readonly delayMs: number }

/**
 * How messages to a phone number fare: the server's ack (or an error ack with that code, e.g. 479),
 * the recipient's delivery receipt, then its read receipt (timed from the delivery).
 */
export interface ReceiptPolicy {
  readonly ack?: ReceiptStep
  readonly ackError?: number
  readonly delivered?: ReceiptStep
  readonly read?: ReceiptStep
}

/** A message a phone number received from a linked device, decrypted by the simulated phone. */
export interface ReceivedMessage {
  readonly id: string
  /** The sender's phone number. */
  readonly from: string
  readonly fromDevice: number
  readonly timestamp: number
  readonly message: proto.Message
}

/**
 * A receipt a linked device sent for a message it received: `delivery` (or `inactive` when the
 * device is not marked online), `read`, `read-self`, `played`...
 */
export interface SentReceipt {
  readonly id: string
  /** The jid the receipt went to: the sender of the message. */
  readonly to: string
  readonly type: string
  readonly timestamp: number
}

/** A file a simulated phone sends: encrypted and hosted by the simulator's media host. */
export interface MediaDelivery {
  readonly kind: MediaKind
  readonly bytes: Uint8Array
  readonly mimetype: string
  readonly fileName?: string
  readonly caption?: string
}

/**
 * An inbound message the simulated phone of `from` sends to a phone number's linked devices:
 * `message` as it is, or `media`, encrypted and hosted, as an imageMessage or documentMessage.
 */
export interface Delivery {
  readonly from: string
  readonly message?: proto.IMessage
  readonly media?: MediaDelivery
  readonly id?: string
}

const bigEndian = (value: number, bytes: number) => {
  const buffer = Buffer.alloc(bytes)
  buffer.writeUIntBE(value, 0, bytes)
  return buffer
}

const bundleNode = (jid: string, bundle: Bundle): BinaryNode => ({
  tag: "user",
  attrs: { jid },
  content: [
    { tag: "registration", attrs: {}, content: bigEndian(bundle.registrationId, 4) },
    { tag: "type", attrs: {}, content: Buffer.from(KEY_BUNDLE_TYPE) },
    { tag: "identity", attrs: {}, content: Buffer.from(bundle.identityKey) },
    {
      tag: "skey",
      attrs: {},
      content: [
        { tag: "id", attrs: {}, content: bigEndian(bundle.signedPreKey.id, 3) },
        { tag: "value", attrs: {}, content: Buffer.from(bundle.signedPreKey.publicKey) },
        { tag: "signature", attrs: {}, content: Buffer.from(bundle.signedPreKey.signature) }
      ]
    },
    ...(bundle.preKey
      ? [
          {
            tag: "key",
            attrs: {},
            content: [
              { tag: "id", attrs: {}, content: bigEndian(bundle.preKey.id, 3) },
              { tag: "value", attrs: {}, content: Buffer.from(bundle.preKey.publicKey) }
            ]
          }
        ]
      : [])
  ]
})

/** The wire type attribute Baileys gives a message of this content. */
const stanzaType = (message: proto.IMessage) => {
  if (message.reactionMessage) return "reaction"
  if (
    message.imageMessage ||
    message.videoMessage ||
    message.audioMessage ||
    message.documentMessage ||
    message.stickerMessage
  ) {
    return "media"
  }
  return "text"
}

const now = () => Math.floor(Date.now() / 1000)

/**
 * Messages between linked devices and simulated phones: the device lists (usync) and pre-key
 * bundles a sender needs, the server's ack and the recipient's receipts for what it sends, the
 * recipient phone's decryption of it, and inbound messages from simulated phones.
 */
export const makeMessaging = (
  accounts: Accounts,
  connectionsOf: (phoneNumber: string) => ReadonlyArray<Connection>,
  logger: SimulatorLogger,
  media?: MediaHost
) => {
  const policies = new Map<string, ReceiptPolicy>()
  const received = new Map<string, ReceivedMessage[]>()
  const receipts = new Map<string, SentReceipt[]>()
  /**
   * What waits for a login, by phone number (inbound messages, for the next device of it that logs
   * in) or by device jid (copies relayed to that device).
   */
  const offline = new Map<string, BinaryNode[]>()
  const timers = new Set<ReturnType<typeof setTimeout>>()
  // The phone decrypts in arrival order: a Signal chain cannot skip ahead and come back cheaply.
  let decrypting: Promise<void> = Promise.resolve()

  /** A phone number, or an account's LID user, from a jid of either kind. */
  const accountOf = (jid: string | undefined, create: boolean): Account | undefined => {
    const decoded = jid ? jidDecode(jid) : undefined
    if (!decoded?.user) return undefined
    if (decoded.server === "lid") return accounts.byLid(decoded.user)
    if (decoded.server !== "s.whatsapp.net") return undefined
    return create ? accounts.getOrCreate(decoded.user, decoded.user) : accounts.get(decoded.user)
  }

  const later = (step: ReceiptStep | undefined, action: () => void) => {
    if (step === "drop") return
    const delayMs = typeof step === "object" ? step.delayMs : 0
    if (delayMs <= 0) return action()
    const timer = setTimeout(() => {
      timers.delete(timer)
      action()
    }, delayMs)
    timers.add(timer)
  }

  /** The devices of a number: the phone (0) and every linked device that published its keys. */
  const usyncUser = (user: BinaryNode): BinaryNode => {
    const account = accountOf(user.attrs.jid, true)
    if (!account) {
      return {
        tag: "user",
        attrs: user.attrs,
        content: [{ tag: "error", attrs: { code: "404", text: "not-found" } }]
      }
    }
    const devices: BinaryNode[] = [
      { tag: "device", attrs: { id: "0" } },
      ...[...account.devices.values()].map((device) => ({
        tag: "device",
        attrs: { id: String(device.id), "key-index": String(device.id) }
      }))
    ]
    return {
      tag: "user",
      attrs: { jid: user.attrs.jid ?? "" },
      content: [
        { tag: "devices", attrs: {}, content: [{ tag: "device-list", attrs: {}, content: devices }] },
        { tag: "lid", attrs: { val: lidJid(account.lidUser) } }
      ]
    }
  }

  const answerUsync = (node: BinaryNode): BinaryNode => {
    const usync = getBinaryNodeChild(node, "usync")
    const users = getBinaryNodeChildren(getBinaryNodeChild(usync, "list"), "user")
    return iqResult(node, [
      {
        tag: "usync",
        attrs: { ...usync?.attrs },
        content: [{ tag: "list", attrs: {}, content: users.map(usyncUser) }]
      }
    ])
  }

  /** A bundle per requested device: the phone's own keys for device 0, a linked device's uploaded ones otherwise. */
  const keyBundle = (user: BinaryNode): BinaryNode => {
    const jid = user.attrs.jid ?? ""
    const account = accountOf(jid, false)
    const deviceId = jidDecode(jid)?.device ?? 0
    if (account && deviceId === 0) return bundleNode(jid, issueBundle(account.phoneKeys))
    const device = account?.devices.get(deviceId)
    if (!device) {
      return {
        tag: "user",
        attrs: { jid },
        content: [{ tag: "error", attrs: { code: "404", text: "not-found" } }]
      }
    }
    const preKeyId = device.preKeys.keys().next().value
    const preKey = preKeyId === undefined ? undefined : device.preKeys.get(preKeyId)
    if (preKeyId !== undefined) device.preKeys.delete(preKeyId)
    return bundleNode(jid, {
      registrationId: device.registrationId,
      identityKey: device.identityKey,
      signedPreKey: device.signedPreKey,
      preKey: preKeyId !== undefined && preKey ? { id: preKeyId, publicKey: preKey } : undefined
    })
  }

  /** The iqs a sender makes before encrypting: usync (devices, lid) and the pre-key bundle query. */
  const answerIq = (node: BinaryNode): BinaryNode | undefined => {
    const mediaConn = media?.answerIq(node)
    if (mediaConn) return mediaConn
    if (node.attrs.xmlns === "usync" && node.attrs.type === "get") return answerUsync(node)
    const key =
      node.attrs.xmlns === "encrypt" && node.attrs.type === "get"
        ? getBinaryNodeChild(node, "key")
        : undefined
    if (key) {
      return iqResult(node, [
        { tag: "list", attrs: {}, content: getBinaryNodeChildren(key, "user").map(keyBundle) }
      ])
    }
    return undefined
  }

  /** Every copy addressed to a simulated phone (device 0) is decrypted, so the Signal chains stay in step. */
  const decryptCopies = async (
    sender: { user: string; device: number },
    node: BinaryNode,
    recipient: Account
  ) => {
    const copies = getBinaryNodeChildren(getBinaryNodeChild(node, "participants"), "to")
    for (const copy of copies) {
      const target = jidDecode(copy.attrs.jid ?? "")
      const account = accountOf(copy.attrs.jid, false)
      const enc = getBinaryNodeChild(copy, "enc")
      if (!account || (target?.device ?? 0) !== 0 || !(enc?.content instanceof Uint8Array)) continue
      try {
        const message = await decryptForPhone(account.phoneKeys, sender, enc.attrs.type ?? "", enc.content)
        if (account !== recipient) continue
        const list = received.get(account.phoneNumber) ?? []
        list.push({
          id: node.attrs.id ?? "",
          from: sender.user,
          fromDevice: sender.device,
          timestamp: now(),
          message
        })
        received.set(account.phoneNumber, list)
      } catch (error) {
        logger.warn(
          { id: node.attrs.id, to: copy.attrs.jid, error: String(error) },
          "the simulated phone could not decrypt a message"
        )
      }
    }
  }

  /**
   * The copies encrypted to linked devices (of the recipient, or the sender's other devices) go to
   * those devices as they are: the server relays ciphertext it cannot read. A device offline gets
   * them at its next login.
   */
  const forwardCopies = (sender: { user: string; device: number }, node: BinaryNode) => {
    const copies = getBinaryNodeChildren(getBinaryNodeChild(node, "participants"), "to")
    const identity = getBinaryNodeChild(node, "device-identity")
    for (const copy of copies) {
      const target = jidDecode(copy.attrs.jid ?? "")
      const account = accountOf(copy.attrs.jid, false)
      const enc = getBinaryNodeChild(copy, "enc")
      const deviceId = target?.device ?? 0
      if (!account || deviceId === 0 || !enc || !account.devices.has(deviceId)) continue
      const ownDevice = account.phoneNumber === sender.user
      const stanza: BinaryNode = {
        tag: "message",
        attrs: {
          from: pnJid(sender.user, sender.device),
          id: node.attrs.id ?? "",
          type: node.attrs.type ?? "text",
          t: String(now()),
          ...(ownDevice ? { recipient: node.attrs.to ?? "" } : {}),
          notify: accounts.get(sender.user)?.pushName ?? sender.user
        },
        content: [enc, ...(identity ? [identity] : [])]
      }
      const deviceJid = pnJid(account.phoneNumber, deviceId)
      const online = connectionsOf(account.phoneNumber).filter((connection) => connection.jid === deviceJid)
      for (const connection of online) connection.send(stanza)
      if (online.length === 0) offline.set(deviceJid, [...(offline.get(deviceJid) ?? []), stanza])
    }
  }

  /** A `<message>` from a linked device: ack it, let the recipient's phone decrypt it, then its receipts. */
  const onMessage = (connection: Connection, senderPhone: string, senderDevice: number, node: BinaryNode) => {
    const id = node.attrs.id ?? ""
    const to = node.attrs.to ?? ""
    const recipient = accountOf(to, false)
    const policy = (recipient && policies.get(recipient.phoneNumber)) || {}
    later(policy.ack, () => {
      if (!connection.isOpen()) return
      connection.send({
        tag: "ack",
        attrs: {
          class: "message",
          id,
          from: to,
          t: String(now()),
          ...(policy.ackError ? { error: String(policy.ackError) } : {})
        }
      })
    })
    if (policy.ackError || !recipient) return
    forwardCopies({ user: senderPhone, device: senderDevice }, node)
    decrypting = decrypting.then(() =>
      decryptCopies({ user: senderPhone, device: senderDevice }, node, recipient)
    )
    const receipt = (type: "delivery" | "read") => {
      for (const each of connectionsOf(senderPhone)) {
        each.send({
          tag: "receipt",
          attrs: { from: to, id, t: String(now()), ...(type === "read" ? { type: "read" } : {}) }
        })
      }
    }
    later(policy.delivered, () => {
      receipt("delivery")
      later(policy.read, () => receipt("read"))
    })
  }

  /** A `<receipt>` from a linked device for messages it received: recorded per id, then acked. */
  const onReceipt = (connection: Connection, phoneNumber: string, node: BinaryNode) => {
    const type = node.attrs.type ?? "delivery"
    const items = getBinaryNodeChildren(getBinaryNodeChild(node, "list"), "item")
    const ids = [node.attrs.id ?? "", ...items.map((item) => item.attrs.id ?? "")]
    const list = receipts.get(phoneNumber) ?? []
    for (const id of ids) list.push({ id, to: node.attrs.to ?? "", type, timestamp: now() })
    receipts.set(phoneNumber, list)
    connection.send({
      tag: "ack",
      attrs: {
        class: "receipt",
        id: node.attrs.id ?? "",
        from: node.attrs.to ?? "",
        ...(node.attrs.type ? { type: node.attrs.type } : {})
      }
    })
  }

  /** Sends a plaintext `<message>` from a simulated phone to every open device of `toPhoneNumber`. */
  const deliver = (toPhoneNumber: string, delivery: Delivery) => {
    const id = delivery.id ?? `3EB0${randomBytes(8).toString("hex").toUpperCase()}`
    const sender = accounts.getOrCreate(delivery.from, delivery.from)
    const message = delivery.media ? mediaMessage(delivery.media) : delivery.message
    if (!message) throw new Error("a delivery needs a message or media")
    const stanza: BinaryNode = {
      tag: "message",
      attrs: {
        from: pnJid(delivery.from),
        id,
        type: stanzaType(message),
        t: String(now()),
        notify: sender.pushName
      },
      content: [{ tag: "plaintext", attrs: {}, content: proto.Message.encode(message).finish() }]
    }
    const connections = connectionsOf(toPhoneNumber)
    for (const connection of connections) connection.send(stanza)
    if (connections.length === 0) {
      offline.set(toPhoneNumber, [...(offline.get(toPhoneNumber) ?? []), stanza])
    }
    return { id, devices: connections.length, queued: connections.length === 0 }
  }

  /** Encrypts a file as a phone would, stores it on the media host and describes it as a message. */
  const mediaMessage = (file: MediaDelivery): proto.IMessage => {
    if (!media) throw new Error("the simulator has no media host")
    const encrypted = encryptMedia(file.bytes, file.kind)
    const directPath = media.store(encrypted.encrypted)
    const content = {
      url: `https://${media.hostname}${directPath}`,
      directPath,
      mediaKey: encrypted.mediaKey,
      mediaKeyTimestamp: now(),
      mimetype: file.mimetype,
      fileSha256: encrypted.fileSha256,
      fileEncSha256: encrypted.fileEncSha256,
      fileLength: file.bytes.length,
      ...(file.caption === undefined ? {} : { caption: file.caption })
    }
    return file.kind === "image"
      ? { imageMessage: content }
      : {
          documentMessage: { ...content, ...(file.fileName === undefined ? {} : { fileName: file.fileName }) }
        }
  }

  /**
   * The plaintext of an image or document a phone number received, downloaded from the media host
   * and decrypted with the media key the message carried; undefined when there is none.
   */
  const receivedMedia = (phoneNumber: string, id: string): Buffer | undefined => {
    const message = received.get(phoneNumber)?.find((each) => each.id === id)?.message
    const content = message?.imageMessage ?? message?.documentMessage
    const kind: MediaKind = message?.imageMessage ? "image" : "document"
    const location = content?.directPath ?? content?.url
    const file = location ? media?.file(location) : undefined
    if (!content?.mediaKey || !file) return undefined
    return decryptMedia(file, content.mediaKey, kind)
  }

  /**
   * What arrived while a device was offline (messages for its phone number, copies for the device),
   * marked `offline` (Baileys upserts those as `append`).
   */
  const takeOffline = (phoneNumber: string, deviceId: number): BinaryNode[] => {
    const held = [...(offline.get(phoneNumber) ?? []), ...(offline.get(pnJid(phoneNumber, deviceId)) ?? [])]
    offline.delete(phoneNumber)
    offline.delete(pnJid(phoneNumber, deviceId))
    return held.map((stanza) => ({ ...stanza, attrs: { ...stanza.attrs, offline: "1" } }))
  }

  return {
    answerIq,
    onMessage,
    onReceipt,
    deliver,
    takeOffline,
    /** Receipts the linked devices of a phone number sent for messages they received, in order. */
    receiptsFrom: (phoneNumber: string): ReadonlyArray<SentReceipt> => receipts.get(phoneNumber) ?? [],
    received: (phoneNumber: string): ReadonlyArray<ReceivedMessage> => received.get(phoneNumber) ?? [],
    receivedMedia,
    setPolicy: (phoneNumber: string, policy: ReceiptPolicy | undefined) => {
      if (policy) policies.set(phoneNumber, policy)
      else policies.delete(phoneNumber)
    },
    /** Waits for the phones to finish decrypting what has arrived so far. */
    settled: () => decrypting,
    close: () => {
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
    }
  }
}

export type Messaging = ReturnType<typeof makeMessaging>
