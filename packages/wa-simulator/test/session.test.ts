import { describe, expect, it } from "vitest"
import { eventually, makeMemoryAuthState, statusCodeOf } from "./baileys-client.ts"
import { useHarness } from "./harness.ts"

const PHONE = "15557654321"

describe("a linked device's session", () => {
  const { simulator, baileys, pair } = useHarness()

  it("after opening, Baileys uploads its pre-keys and the simulator keeps them", async () => {
    const sim = await simulator()
    const auth = await pair(sim, PHONE)
    const client = baileys(sim, auth)
    await client.waitFor((update) => update.connection === "open")
    await eventually(() => (sim.account(PHONE)?.devices.get(1)?.preKeys.size ?? 0) > 0)
    const device = sim.account(PHONE)!.devices.get(1)!
    expect(device.preKeys.size).toBe(auth.creds.nextPreKeyId - 1)
    expect(Buffer.from(device.identityKey)).toEqual(Buffer.from(auth.creds.signedIdentityKey.public))
  })

  it("a linked device logs in again on a fresh socket, without a QR", async () => {
    const sim = await simulator()
    const auth = await pair(sim, PHONE)
    const first = baileys(sim, auth)
    await first.waitFor((update) => update.connection === "open")
    first.socket.end(undefined)
    await eventually(() => sim.connectionsOf(PHONE).length === 0)

    const again = baileys(sim, auth)
    await again.waitFor((update) => update.connection === "open")
    expect(again.updates.some((update) => update.qr !== undefined)).toBe(false)
    expect(sim.connectionsOf(PHONE)).toHaveLength(1)
  })

  it("an iq the simulator does not know is answered with a 501 error, not left waiting", async () => {
    const sim = await simulator()
    const auth = await pair(sim, PHONE)
    const client = baileys(sim, auth)
    await client.waitFor((update) => update.connection === "open")
    await expect(
      client.socket.query({
        tag: "iq",
        attrs: { to: "@s.whatsapp.net", type: "get", xmlns: "simulator:unknown" },
        content: [{ tag: "anything", attrs: {} }]
      })
    ).rejects.toMatchObject({ data: 501, message: "feature-not-implemented" })
    expect(client.updates.some((update) => update.connection === "close")).toBe(false)
  })

  it("a login for a device the server does not know is refused with 401", async () => {
    const sim = await simulator()
    const auth = makeMemoryAuthState()
    auth.creds.me = { id: `${PHONE}:7@s.whatsapp.net`, name: "ghost" }
    const client = baileys(sim, auth)
    const closed = await client.waitFor((update) => update.connection === "close")
    expect(statusCodeOf(closed)).toBe(401)
  })

  it("a logout unlinks the device, so its next login is refused with 401", async () => {
    const sim = await simulator()
    const auth = await pair(sim, PHONE)
    const client = baileys(sim, auth)
    await client.waitFor((update) => update.connection === "open")
    await client.socket.logout()
    await eventually(() => sim.account(PHONE)?.devices.size === 0)

    const again = baileys(sim, auth)
    const closed = await again.waitFor((update) => update.connection === "close")
    expect(statusCodeOf(closed)).toBe(401)
  })
})
