import { getBinaryNodeChild, getBinaryNodeChildren, type BinaryNode } from "@whiskeysockets/baileys"

/** An inbound message a linked device has not acknowledged yet. */
export interface PendingMessage {
  readonly id: string
  /** The device it was delivered to. */
  readonly deviceJid: string
}

/**
 * As WhatsApp does, a `<message>` delivered to a linked device stays pending until that device
 * acknowledges it, and is delivered again (marked offline) at the device's next login. A device
 * acknowledges a message with its receipt (rc14 sends a `delivery`, `inactive`, `sender`... receipt
 * for a message it decrypted, and nothing more) or with an `<ack class="message">` (what it sends for
 * messages it drops, or a nack); a `retry` receipt asks for the message again, so it does not count.
 */
export const makeRedelivery = () => {
  const pending = new Map<string, Map<string, BinaryNode>>()

  const acknowledge = (deviceJid: string, ids: ReadonlyArray<string>) => {
    const waiting = pending.get(deviceJid)
    if (!waiting) return
    for (const id of ids) waiting.delete(id)
    if (waiting.size === 0) pending.delete(deviceJid)
  }

  return {
    /** A stanza the server sent to a logged-in device: a `<message>` is pending from now on. */
    sent: (deviceJid: string, stanza: BinaryNode) => {
      const id = stanza.attrs.id
      if (stanza.tag !== "message" || !id) return
      const waiting = pending.get(deviceJid) ?? new Map<string, BinaryNode>()
      waiting.set(id, stanza)
      pending.set(deviceJid, waiting)
    },
    /** A stanza a logged-in device sent: its receipts and message acks acknowledge messages. */
    received: (deviceJid: string, node: BinaryNode) => {
      if (node.tag === "ack" && node.attrs.class === "message" && node.attrs.id) {
        acknowledge(deviceJid, [node.attrs.id])
      } else if (node.tag === "receipt" && node.attrs.type !== "retry") {
        const items = getBinaryNodeChildren(getBinaryNodeChild(node, "list"), "item")
        acknowledge(deviceJid, [node.attrs.id ?? "", ...items.map((item) => item.attrs.id ?? "")])
      }
    },
    /** What the device left unacknowledged, to deliver again as it logs in, in the order first sent. */
    pendingFor: (deviceJid: string): BinaryNode[] =>
      [...(pending.get(deviceJid)?.values() ?? [])].map((stanza) => ({
        ...stanza,
        attrs: { ...stanza.attrs, offline: "1" }
      })),
    /** Every message still pending for the devices whose jid the predicate accepts. */
    pending: (accept: (deviceJid: string) => boolean): ReadonlyArray<PendingMessage> =>
      [...pending].flatMap(([deviceJid, waiting]) =>
        accept(deviceJid) ? [...waiting.keys()].map((id) => ({ id, deviceJid })) : []
      )
  }
}

export type Redelivery = ReturnType<typeof makeRedelivery>
