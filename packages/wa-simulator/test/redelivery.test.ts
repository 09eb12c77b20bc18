import { proto, type WAMessage, type WAMessageUpdate } from "@whiskeysockets/baileys"
import { describe, expect, it } from "vitest"
import { startControlServer } from "../src/index.ts"
import { eventually } from "./baileys-client.ts"
import { useHarness } from "./harness.ts"

const PHONE = "15550005551"
const CONTACT = "15550005552"

describe("messages a linked device has not acknowledged are delivered again", () => {
  const { simulator, baileys, pair } = useHarness()

  it("a message the device acknowledged with its receipt is no longer pending and comes only once", async () => {
    const sim = await simulator()
    const auth = await pair(sim, PHONE)
    const first = baileys(sim, auth, { shouldSyncHistoryMessage: () => false })
    await first.waitFor((update) => update.connection === "open")
    const { id } = await sim.deliver(PHONE, { from: CONTACT, message: { conversation: "once" } })
    expect(sim.pending(PHONE).map((each) => each.id)).toEqual([id])
    await eventually(() => sim.receiptsFrom(PHONE).some((receipt) => receipt.id === id))
    expect(sim.pending(PHONE)).toEqual([])

    first.socket.end(undefined)
    const upserted: WAMessage[] = []
    const second = baileys(sim, auth, { shouldSyncHistoryMessage: () => false })
    second.socket.ev.on("messages.upsert", ({ messages }) => upserted.push(...messages))
    await second.waitFor((update) => update.connection === "open")
    await second.waitFor((update) => update.receivedPendingNotifications === true)
    expect(upserted.map((each) => each.key.id)).not.toContain(id)
  })

  it("a message the device left unacknowledged is delivered again, marked offline, at each login until acknowledged", async () => {
    const sim = await simulator()
    const control = await startControlServer(sim)
    try {
      const auth = await pair(sim, PHONE)
      const refused: string[] = []
      // the WhatIsUp patch of Baileys: a message whose beforeAck rejects is not acknowledged
      const first = baileys(sim, auth, {
        shouldSyncHistoryMessage: () => false,
        beforeAck: async (message) => {
          refused.push(message.key.id!)
          throw new Error("not stored")
        }
      })
      await first.waitFor((update) => update.connection === "open")
      const { id } = await sim.deliver(PHONE, { from: CONTACT, message: { conversation: "again" } })
      await eventually(() => refused.includes(id))
      const [device] = sim.connectionsOf(PHONE)
      expect(sim.pending(PHONE)).toEqual([{ id, deviceJid: device!.jid }])
      const pending = await fetch(`${control.url}/accounts/+${PHONE}/pending`)
      expect(await pending.json()).toEqual([{ id, device_jid: device!.jid }])
      first.socket.end(undefined)

      const upserts: Array<{ id: string; type: string }> = []
      const second = baileys(sim, auth, { shouldSyncHistoryMessage: () => false })
      second.socket.ev.on("messages.upsert", ({ messages, type }) =>
        upserts.push(...messages.map((each) => ({ id: each.key.id!, type })))
      )
      await eventually(() => upserts.some((each) => each.id === id))
      expect(upserts.filter((each) => each.id === id)).toEqual([{ id, type: "append" }])
      await eventually(() => sim.pending(PHONE).length === 0)
      expect(sim.receiptsFrom(PHONE).filter((receipt) => receipt.id === id)).toHaveLength(1)
    } finally {
      await control.close()
    }
  })

  it("a recipient's receipt the device left unacknowledged is delivered again at its next login, until acknowledged", async () => {
    const sim = await simulator()
    const control = await startControlServer(sim)
    try {
      const auth = await pair(sim, PHONE)
      const refused: Array<{ id: string; status: number }> = []
      // the WhatIsUp patch of Baileys: a receipt whose beforeReceiptAck rejects is not acknowledged
      const first = baileys(sim, auth, {
        shouldSyncHistoryMessage: () => false,
        beforeReceiptAck: async (updates) => {
          refused.push(...updates.map((each) => ({ id: each.key.id!, status: each.update.status! })))
          throw new Error("not stored")
        }
      })
      await first.waitFor((update) => update.connection === "open")
      // later than the sent message's own upsert, which would otherwise absorb the status
      sim.setReceipts(CONTACT, { delivered: { delayMs: 300 }, read: "drop" })
      const sent = await first.socket.sendMessage(`${CONTACT}@s.whatsapp.net`, { text: "receipted" })
      const id = sent!.key.id!
      await eventually(() => refused.some((each) => each.id === id))
      expect(refused).toEqual([{ id, status: proto.WebMessageInfo.Status.DELIVERY_ACK }])
      const [device] = sim.connectionsOf(PHONE)
      expect(sim.pendingReceipts(PHONE)).toEqual([{ id, type: "delivery", deviceJid: device!.jid }])
      const pending = await fetch(`${control.url}/accounts/+${PHONE}/pending-receipts`)
      expect(await pending.json()).toEqual([{ id, type: "delivery", device_jid: device!.jid }])
      first.socket.end(undefined)
      await eventually(() => sim.connectionsOf(PHONE).length === 0)

      const stored: WAMessageUpdate[] = []
      const second = baileys(sim, auth, {
        shouldSyncHistoryMessage: () => false,
        beforeReceiptAck: async (updates) => void stored.push(...updates)
      })
      await eventually(() => stored.some((each) => each.key.id === id))
      expect(stored.map((each) => [each.key.id, each.update.status])).toEqual([
        [id, proto.WebMessageInfo.Status.DELIVERY_ACK]
      ])
      await eventually(() => sim.pendingReceipts(PHONE).length === 0)
      second.socket.end(undefined)
      await eventually(() => sim.connectionsOf(PHONE).length === 0)

      // acknowledged: a third login gets nothing again
      const third: WAMessageUpdate[] = []
      const last = baileys(sim, auth, {
        shouldSyncHistoryMessage: () => false,
        beforeReceiptAck: async (updates) => void third.push(...updates)
      })
      await last.waitFor((update) => update.receivedPendingNotifications === true)
      expect(third).toEqual([])
    } finally {
      await control.close()
    }
  })
})
