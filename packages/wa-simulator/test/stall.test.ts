import type { BinaryNode } from "@whiskeysockets/baileys"
import { describe, expect, it } from "vitest"
import { eventually, statusCodeOf } from "./baileys-client.ts"
import { useHarness } from "./harness.ts"

const PHONE = "15553334444"

const ping = (): BinaryNode => ({
  tag: "iq",
  attrs: { to: "s.whatsapp.net", type: "get", xmlns: "w:p" },
  content: [{ tag: "ping", attrs: {} }]
})

describe("stalled responses", () => {
  const { simulator, baileys, pair } = useHarness()

  const openSession = async () => {
    const sim = await simulator()
    const auth = await pair(sim, PHONE)
    const client = baileys(sim, auth)
    await client.waitFor((update) => update.connection === "open")
    return { sim, auth, client }
  }

  it("a stalled account's iqs go unanswered: Baileys' query gives up with 408", async () => {
    const { sim, client } = await openSession()
    sim.stall(PHONE, true)
    await expect(client.socket.query(ping(), 200)).rejects.toMatchObject({
      message: "Timed Out",
      output: { statusCode: 408 }
    })
    expect(sim.held(PHONE)).toBeGreaterThanOrEqual(1)
    expect(client.updates.some((update) => update.connection === "close")).toBe(false)
  })

  it("un-stalling answers what was held", async () => {
    const { sim, client } = await openSession()
    sim.stall(PHONE, true)
    let answered: BinaryNode | undefined
    const pending = client.socket.query(ping()).then((answer) => (answered = answer))
    await eventually(() => sim.held(PHONE) >= 1)
    expect(answered).toBeUndefined()

    expect(sim.stall(PHONE, false)).toBeGreaterThanOrEqual(1)
    await pending
    expect(answered?.attrs.type).toBe("result")
    expect(sim.held(PHONE)).toBe(0)
  })

  it("a login while stalled waits without <success>, and opens once un-stalled", async () => {
    const sim = await simulator()
    const auth = await pair(sim, PHONE)
    sim.stall(PHONE, true)
    const client = baileys(sim, auth)
    await eventually(() => sim.held(PHONE) === 1)
    expect(sim.connectionsOf(PHONE)).toHaveLength(0)
    expect(client.updates.some((update) => update.connection === "open")).toBe(false)

    sim.stall(PHONE, false)
    await client.waitFor((update) => update.connection === "open")
    expect(sim.connectionsOf(PHONE)).toHaveLength(1)
    expect(client.updates.some((update) => statusCodeOf(update) !== undefined)).toBe(false)
  })
})
