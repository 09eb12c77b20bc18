import type { WAMessage } from "@whiskeysockets/baileys"
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
})
