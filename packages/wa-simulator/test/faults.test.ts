import { describe, expect, it } from "vitest"
import { statusCodeOf } from "./baileys-client.ts"
import { useHarness } from "./harness.ts"

const PHONE = "15550001111"

describe("fault injection", () => {
  const { simulator, baileys, pair } = useHarness()

  const openSession = async () => {
    const sim = await simulator()
    const auth = await pair(sim, PHONE)
    const client = baileys(sim, auth)
    await client.waitFor((update) => update.connection === "open")
    return { sim, auth, client }
  }

  it.each([401, 403, 408, 411, 428, 440, 500, 503, 515])(
    "a stream error %i closes Baileys with that status",
    async (code) => {
      const { sim, client } = await openSession()
      expect(sim.inject(PHONE, { kind: "stream-error", code })).toBe(1)
      const closed = await client.waitFor((update) => update.connection === "close")
      expect(statusCodeOf(closed)).toBe(code)
    }
  )

  it("a dropped connection closes Baileys with 428 (connection closed)", async () => {
    const { sim, client } = await openSession()
    sim.inject(PHONE, { kind: "drop" })
    const closed = await client.waitFor((update) => update.connection === "close")
    expect(statusCodeOf(closed)).toBe(428)
  })

  it("a 405 failure at login (outdated client) closes Baileys with 405, and logins work again once cleared", async () => {
    const { sim, auth, client } = await openSession()
    client.socket.end(undefined)
    sim.setLoginFault({ kind: "failure", reason: 405 })
    const refused = baileys(sim, auth)
    const closed = await refused.waitFor((update) => update.connection === "close")
    expect(statusCodeOf(closed)).toBe(405)

    sim.setLoginFault(undefined)
    const again = baileys(sim, auth)
    await again.waitFor((update) => update.connection === "open")
  })
})
