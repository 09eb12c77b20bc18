import {
  getBinaryNodeChild,
  getBinaryNodeChildren,
  jidDecode,
  KEY_BUNDLE_TYPE,
  normalizeMessageContent,
  type BinaryNode,
  type proto
} from "@whiskeysockets/baileys"
import { issueDeviceBundle, lidJid, pnJid, type Account, type Accounts } from "./accounts.ts"
import type { Connection } from "./connection.ts"
import { makeInbound, type Delivery, type DeliveryResult } from "./inbound.ts"
import { iqResult } from "./iq.ts"
import type { SimulatorLogger } from "./logger.ts"
import { makeMailbox } from "./mailbox.ts"
import { decryptMedia, type MediaHost, type MediaKind } from "./media.ts"
import { decryptForPhone, issueBundle, type Bundle } from "./phone-keys.ts"

/** What the network does with one step after a message reaches the server: as usual, never, or later. */
export type ReceiptStep = "normal" | "drop" | { readonly delayMs: number }

/**
 * How messages to a phone number fare: the server's ack (or an error ack with that code, e.g. 479),
 * the recipient's delivery receipt, then its read receipt (timed from the delivery), then, for a
 * voice note, its played receipt (timed from the read).
 */
export interface ReceiptPolicy {
  readonly ack?: ReceiptStep
  readonly ackError?: number
  readonly delivered?: ReceiptStep
  readonly read?: ReceiptStep
  readonly played?: ReceiptStep
}

/** A message a phone number received from a linked device, decrypted by the simulated phone. */
export interface ReceivedMessage {
  readonly id: string
  /** The sender's phone number. */
  readonly from: string
  readonly fromDevice: number
  readonly timestamp: number
  readonly message: proto.Message
  /** This copy answered a retry receipt the phone sent for its id (see `sendRetryReceipt`). */
  readonly resend: boolean
}

/**
 * A receipt a linked device sent for a message it received: `delivery` (or `inactive` when the
 * device is not marked online), `read`, `read-self`, `played`, `retry`...
 */
export interface SentReceipt {
  readonly id: string
  /** The jid the receipt went to: the sender of the message. */
  readonly to: string
  readonly type: string
  readonly timestamp: number
}

/** A `<receipt type="retry">` a simulated phone sent to the linked device a message came from. */
export interface RetryRequest {
  readonly id: string
  /** The device jid it went to. */
  readonly to: string
  readonly count: number
  /** The device acknowledged it: Baileys has handled it (and sent the message again, if it did, before). */
  acked: boolean
  /** A copy of the message arrived after it and the phone decrypted it. */
  answered: boolean
}

export type { Delivery, DeliveryResult, Encryption, MediaDelivery } from "./inbound.ts"

const bigEndian = (value: number, bytes: number) => {
  const buffer = Buffer.alloc(bytes)
  buffer.writeUIntBE(value, 0, bytes)
  return buffer
}

/** A bundle's keys as `<user>` (key query) and `<keys>` (retry receipt) carry them: 32-byte keys, no type byte. */
const bundleKeys = (bundle: Bundle): BinaryNode[] => [
  { tag: "type", attrs: {}, content: Buffer.from(KEY_BUNDLE_TYPE) },
  { tag: "identity", attrs: {}, content: Buffer.from(bundle.identityKey) },
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
    : []),
  {
    tag: "skey",
    attrs: {},
    content: [
      { tag: "id", attrs: {}, content: bigEndian(bundle.signedPreKey.id, 3) },
      { tag: "value", attrs: {}, content: Buffer.from(bundle.signedPreKey.publicKey) },
      { tag: "signature", attrs: {}, content: Buffer.from(bundle.signedPreKey.signature) }
    ]
  }
]

const bundleNode = (jid: string, bundle: Bundle): BinaryNode => ({
  tag: "user",
  attrs: { jid },
  content: [
    { tag: "registration", attrs: {}, content: bigEndian(bundle.registrationId, 4) },
    ...bundleKeys(bundle)
  ]
})

/** The media a message carries, with the kind its keys are derived for. */
const MEDIA_FIELDS = [
  ["imageMessage", "image"],
  ["videoMessage", "video"],
  ["audioMessage", "audio"],
  ["documentMessage", "document"],
  ["stickerMessage", "sticker"]
] as const satisfies ReadonlyArray<readonly [keyof proto.IMessage, MediaKind]>

const now = () => Math.floor(Date.now() / 1000)

/**
 * Messages between linked devices and simulated phones: the device lists (usync) and pre-key
 * bundles a sender needs, the server's ack and the recipient's receipts for what it sends, the
 * recipient phone's decryption of it and its retry receipts, and inbound messages from simulated
 * phones (see inbound.ts), held with relayed copies until the device acknowledges them.
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
  const retryRequests = new Map<string, RetryRequest[]>()
  const timers = new Set<ReturnType<typeof setTimeout>>()
  const mailbox = makeMailbox(connectionsOf)
  // The phones' Signal work runs in arrival order: a chain cannot skip ahead and come back cheaply.
  let phoneQueue: Promise<unknown> = Promise.resolve()
  const phoneWork = <A>(job: () => Promise<A>): Promise<A> => {
    const result = phoneQueue.then(job)
    phoneQueue = result.catch(() => {})
    return result
  }
  const inbound = makeInbound({ accounts, mailbox, logger, media, phoneWork })

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
    return bundleNode(jid, issueDeviceBundle(device))
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

  /**
   * Every copy addressed to a simulated phone (device 0) is decrypted, so the Signal chains stay in
   * step; the recipient's is recorded, as an answer to its retry receipt when it asked for one.
   */
  const decryptCopies = async (
    sender: { user: string; device: number },
    node: BinaryNode,
    recipient: Account
  ) => {
    const copies = getBinaryNodeChildren(getBinaryNodeChild(node, "participants"), "to")
    const id = node.attrs.id ?? ""
    for (const copy of copies) {
      const target = jidDecode(copy.attrs.jid ?? "")
      const account = accountOf(copy.attrs.jid, false)
      const enc = getBinaryNodeChild(copy, "enc")
      if (!account || (target?.device ?? 0) !== 0 || !(enc?.content instanceof Uint8Array)) continue
      try {
        const message = await decryptForPhone(account.phoneKeys, sender, enc.attrs.type ?? "", enc.content)
        if (account !== recipient) continue
        const asked = (retryRequests.get(account.phoneNumber) ?? []).find(
          (request) => request.id === id && !request.answered
        )
        if (asked) asked.answered = true
        const list = received.get(account.phoneNumber) ?? []
        list.push({
          id,
          from: sender.user,
          fromDevice: sender.device,
          timestamp: now(),
          message,
          resend: !!asked
        })
        received.set(account.phoneNumber, list)
      } catch (error) {
        logger.warn(
          { id, to: copy.attrs.jid, error: String(error) },
          "the simulated phone could not decrypt a message"
        )
      }
    }
  }

  /**
   * The copies encrypted to linked devices (of the recipient, or the sender's other devices) go to
   * those devices as they are: the server relays ciphertext it cannot read, and holds it until the
   * device acknowledges it.
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
      mailbox.post(account.phoneNumber, deviceId, {
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
      })
    }
  }

  /** A voice note: Baileys marks the `<enc>` of an audio recorded as one `mediatype="ptt"`. */
  const isVoiceNote = (node: BinaryNode) =>
    getBinaryNodeChildren(getBinaryNodeChild(node, "participants"), "to").some(
      (copy) => getBinaryNodeChild(copy, "enc")?.attrs.mediatype === "ptt"
    )

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
    const sender = { user: senderPhone, device: senderDevice }
    forwardCopies(sender, node)
    void phoneWork(() => decryptCopies(sender, node, recipient))
    // held for each of the sender's devices until it acks the receipt: one offline gets it at its next login
    const receipt = (type: "delivery" | "read" | "played") => {
      for (const deviceId of accounts.get(senderPhone)?.devices.keys() ?? []) {
        mailbox.post(senderPhone, deviceId, {
          tag: "receipt",
          attrs: { from: to, id, t: String(now()), ...(type === "delivery" ? {} : { type }) }
        })
      }
    }
    const voiceNote = isVoiceNote(node)
    later(policy.delivered, () => {
      receipt("delivery")
      later(policy.read, () => {
        receipt("read")
        if (voiceNote) later(policy.played, () => receipt("played"))
      })
    })
  }

  /**
   * A `<receipt>` from a linked device for messages it received: recorded per id, then acked; it
   * acknowledges the messages held for the device, and a retry receipt makes the phone that sent
   * the message send it again.
   */
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
    const deviceJid = connection.jid ?? ""
    for (const id of ids) mailbox.acknowledged(deviceJid, "message", id)
    const deviceId = jidDecode(deviceJid)?.device
    if (type === "retry" && deviceId) inbound.onRetryReceipt({ phoneNumber, deviceId }, node)
  }

  /**
   * An `<ack>` from a linked device: for a message it could not take (a nack), or for a receipt a
   * phone sent it; either acknowledges what was held for it. The ack of a phone's retry receipt
   * marks it acked once the phone decrypted what arrived before (what Baileys sent again first).
   */
  const onAck = (connection: Connection, node: BinaryNode) => {
    const id = node.attrs.id ?? ""
    const tag = node.attrs.class ?? ""
    mailbox.acknowledged(connection.jid ?? "", tag, id, node.attrs.type)
    const phone = accountOf(node.attrs.to, false)
    if (tag !== "receipt" || node.attrs.type !== "retry" || !phone) return
    const request = (retryRequests.get(phone.phoneNumber) ?? []).find(
      (each) => each.id === id && each.to === connection.jid && !each.acked
    )
    if (request) {
      void phoneWork(async () => {
        request.acked = true
      })
    }
  }

  /**
   * The simulated phone of `phoneNumber` could not decrypt message `id` it received from a linked
   * device and sends a `<receipt type="retry">` to that device (held until the device acks it), as
   * Baileys' sendRetryRequest shapes one: `<retry count id t v>`, the phone's `<registration>`, and
   * from the second retry its `<keys>` (a fresh pre-key bundle) to open a new session with.
   */
  const sendRetryReceipt = (phoneNumber: string, id: string, count = 1): RetryRequest => {
    const account = accounts.get(phoneNumber)
    const original = received.get(phoneNumber)?.findLast((each) => each.id === id)
    if (!account || !original)
      throw new Error(`${phoneNumber} received no message ${id} from a linked device`)
    if (!Number.isInteger(count) || count < 1) throw new Error("count must be at least 1")
    const stanza: BinaryNode = {
      tag: "receipt",
      attrs: { from: pnJid(phoneNumber), id, type: "retry", t: String(now()) },
      content: [
        { tag: "retry", attrs: { count: String(count), id, t: String(original.timestamp), v: "1" } },
        { tag: "registration", attrs: {}, content: bigEndian(account.phoneKeys.registrationId, 4) },
        ...(count > 1
          ? [{ tag: "keys", attrs: {}, content: bundleKeys(issueBundle(account.phoneKeys)) }]
          : [])
      ]
    }
    const request: RetryRequest = {
      id,
      to: pnJid(original.from, original.fromDevice),
      count,
      acked: false,
      answered: false
    }
    retryRequests.set(phoneNumber, [...(retryRequests.get(phoneNumber) ?? []), request])
    mailbox.post(original.from, original.fromDevice, stanza)
    return request
  }

  /**
   * The simulated phone of `phoneNumber` sends a receipt for message `id` it received, now, to every
   * device of the sender, whatever its receipt policy did already: a late, repeated or out-of-order
   * receipt, as the network may bring one. Throws when the phone received no such message.
   */
  const sendReceipt = (phoneNumber: string, id: string, type: "delivery" | "read" | "played") => {
    const original = received.get(phoneNumber)?.findLast((each) => each.id === id)
    if (!original) throw new Error(`${phoneNumber} received no message ${id} from a linked device`)
    for (const deviceId of accounts.get(original.from)?.devices.keys() ?? []) {
      mailbox.post(original.from, deviceId, {
        tag: "receipt",
        attrs: { from: pnJid(phoneNumber), id, t: String(now()), ...(type === "delivery" ? {} : { type }) }
      })
    }
  }

  /**
   * The plaintext of the file a phone number received in message `id` (its latest copy), downloaded
   * from the media host and decrypted with the message's media key; undefined when there is none.
   */
  const receivedMedia = (phoneNumber: string, id: string): Buffer | undefined => {
    const message = normalizeMessageContent(
      received.get(phoneNumber)?.findLast((each) => each.id === id)?.message
    )
    for (const [field, kind] of MEDIA_FIELDS) {
      const content = message?.[field]
      const location = content?.directPath ?? content?.url
      const file = location ? media?.file(location) : undefined
      if (content?.mediaKey && file) return decryptMedia(file, content.mediaKey, kind)
    }
    return undefined
  }

  return {
    answerIq,
    onMessage,
    onReceipt,
    onAck,
    deliver: (toPhoneNumber: string, delivery: Delivery): Promise<DeliveryResult> =>
      inbound.deliver(toPhoneNumber, delivery),
    sendRetryReceipt,
    sendReceipt,
    /** What a device gets when it logs in: what is held for it (see mailbox.ts), marked offline. */
    takeOffline: mailbox.atLogin,
    /** `<message>` stanzas a device has not acknowledged yet: delivered again at its next login. */
    pending: mailbox.pending,
    /** Recipients' `<receipt>` stanzas a device has not acknowledged yet: delivered again at its next login. */
    pendingReceipts: mailbox.pendingReceipts,
    /** Receipts the linked devices of a phone number sent for messages they received, in order. */
    receiptsFrom: (phoneNumber: string): ReadonlyArray<SentReceipt> => receipts.get(phoneNumber) ?? [],
    received: (phoneNumber: string): ReadonlyArray<ReceivedMessage> => received.get(phoneNumber) ?? [],
    /** Retry receipts a phone number's phone sent, in order. */
    retryRequests: (phoneNumber: string): ReadonlyArray<RetryRequest> => retryRequests.get(phoneNumber) ?? [],
    receivedMedia,
    setPolicy: (phoneNumber: string, policy: ReceiptPolicy | undefined) => {
      if (policy) policies.set(phoneNumber, policy)
      else policies.delete(phoneNumber)
    },
    /** Waits for the phones to finish the Signal work asked of them so far. */
    settled: (): Promise<void> => phoneQueue.then(() => undefined),
    close: () => {
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
    }
  }
}

export type Messaging = ReturnType<typeof makeMessaging>
