import { describe, expect, it } from "vitest"
import { makeMemoryAuthState, statusCodeOf } from "./baileys-client.ts"
import { useHarness } from "./harness.ts"

const PHONE = "15552223333"

describe("pairing by code", () => {
  const { simulator, baileys } = useHarness()

  const companionAskingForCode = async () => {
    const sim = await simulator()
    const auth = makeMemoryAuthState()
    const client = baileys(sim, auth)
    await client.waitFor((update) => typeof update.qr === "string")
    const code = await client.socket.requestPairingCode(PHONE)
    return { sim, auth, client, code }
  }

  it("the typed code links the device: Baileys restarts on 515 and opens as the phone's number", async () => {
    const { sim, auth, client, code } = await companionAskingForCode()
    expect(code).toMatch(/^[0-9A-Z]{8}$/)

    const linked = await sim.enterPairingCode(PHONE, `${code.slice(0, 4)}-${code.slice(4)}`)
    expect(linked.jid).toBe(`${PHONE}:1@s.whatsapp.net`)
    const closed = await client.waitFor((update) => update.connection === "close")
    expect(statusCodeOf(closed)).toBe(515)
    expect(auth.creds.me?.id).toBe(linked.jid)

    const again = baileys(sim, auth)
    await again.waitFor((update) => update.connection === "open")
    expect(auth.creds.me?.id).toBe(`${PHONE}:1@s.whatsapp.net`)
    expect(auth.creds.me?.lid).toBe(linked.lid)
    expect(sim.connectionsOf(PHONE)).toHaveLength(1)
    expect(Buffer.from(sim.account(PHONE)!.devices.get(1)!.identityKey)).toEqual(
      Buffer.from(auth.creds.signedIdentityKey.public)
    )
  })

  it("a wrong code links nothing and leaves the companion connected, so the right one still links it", async () => {
    const { sim, auth, client, code } = await companionAskingForCode()
    const wrong = code.startsWith("A") ? `B${code.slice(1)}` : `A${code.slice(1)}`
    await expect(sim.enterPairingCode(PHONE, wrong)).rejects.toThrow(/does not match/)
    expect(sim.account(PHONE)?.devices.size ?? 0).toBe(0)
    expect(client.updates.some((update) => update.connection === "close")).toBe(false)

    const linked = await sim.enterPairingCode(PHONE, code.toLowerCase())
    const closed = await client.waitFor((update) => update.connection === "close")
    expect(statusCodeOf(closed)).toBe(515)
    await baileys(sim, auth).waitFor((update) => update.connection === "open")
    expect(auth.creds.me?.id).toBe(linked.jid)
  })

  it("the phone refuses a code when no companion asked for one for its number", async () => {
    const { sim, code } = await companionAskingForCode()
    await expect(sim.enterPairingCode("15559990000", code)).rejects.toThrow(/no connected companion/)
    expect(sim.account("15559990000")).toBeUndefined()
  })
})
