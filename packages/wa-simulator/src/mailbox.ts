import type { BinaryNode } from "@whiskeysockets/baileys"
import { pnJid } from "./accounts.ts"
import type { Connection } from "./connection.ts"

interface Held {
  readonly stanza: BinaryNode
  /** What follows once the device acknowledged this stanza (e.g. the next copy of a message). */
  readonly afterAck: (() => void) | undefined
}

/**
 * What the server holds for each linked device until the device acknowledges it: a `<message>`
 * until the device's `<receipt>` for it (or its `<ack class="message">`, a nack), any other stanza
 * (a recipient's `<receipt>`, a retry receipt) until its `<ack class=tag>`. A stanza goes to the device's open connections at once; whatever is
 * still held when the device logs in goes (again) then, marked offline, as WhatsApp redelivers what
 * was never acknowledged.
 */
export const makeMailbox = (connectionsOf: (phoneNumber: string) => ReadonlyArray<Connection>) => {
  const held = new Map<string, Held[]>()

  /** Holds the stanza for the device and sends it to its open connections; returns how many got it. */
  const post = (phoneNumber: string, deviceId: number, stanza: BinaryNode, afterAck?: () => void) => {
    const jid = pnJid(phoneNumber, deviceId)
    held.set(jid, [...(held.get(jid) ?? []), { stanza, afterAck }])
    const online = connectionsOf(phoneNumber).filter((connection) => connection.jid === jid)
    for (const connection of online) connection.send(stanza)
    return online.length
  }

  /**
   * The device (its jid) acknowledged the oldest held stanza of that tag and id (and type, for a
   * receipt: the delivery and the retry receipt of one message are told apart); what follows it runs.
   */
  const acknowledged = (deviceJid: string, tag: string, id: string, type?: string) => {
    const list = held.get(deviceJid) ?? []
    const index = list.findIndex(
      ({ stanza }) =>
        stanza.tag === tag && stanza.attrs.id === id && (tag !== "receipt" || stanza.attrs.type === type)
    )
    if (index < 0) return
    const [done] = list.splice(index, 1)
    if (list.length === 0) held.delete(deviceJid)
    done?.afterAck?.()
  }

  /** What a device that logs in gets first: everything held for it, in order, marked offline. */
  const atLogin = (phoneNumber: string, deviceId: number): BinaryNode[] =>
    (held.get(pnJid(phoneNumber, deviceId)) ?? []).map(({ stanza }) => ({
      ...stanza,
      attrs: { ...stanza.attrs, offline: "1" }
    }))

  /** The `<message>` stanzas held, unacknowledged, for the devices `accept` names. */
  const pending = (accept: (deviceJid: string) => boolean) =>
    [...held].flatMap(([deviceJid, list]) =>
      accept(deviceJid)
        ? list
            .filter(({ stanza }) => stanza.tag === "message")
            .map(({ stanza }) => ({ id: stanza.attrs.id ?? "", deviceJid }))
        : []
    )

  /** The `<receipt>` stanzas held, unacknowledged, for the devices `accept` names (`delivery` when untyped). */
  const pendingReceipts = (accept: (deviceJid: string) => boolean) =>
    [...held].flatMap(([deviceJid, list]) =>
      accept(deviceJid)
        ? list
            .filter(({ stanza }) => stanza.tag === "receipt")
            .map(({ stanza }) => ({
              id: stanza.attrs.id ?? "",
              type: stanza.attrs.type ?? "delivery",
              deviceJid
            }))
        : []
    )

  return { post, acknowledged, atLogin, pending, pendingReceipts }
}

export type Mailbox = ReturnType<typeof makeMailbox>
