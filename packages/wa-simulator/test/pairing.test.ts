import { describe, expect, it } from "vitest"
import { makeMemoryAuthState, statusCodeOf } from "./baileys-client.ts"
import { useHarness } from "./harness.ts"

const PHONE = "15551234567"

describe("pairing by QR", () => {
  const { simulator, baileys } = useHarness()

  it("Baileys completes the Noise handshake and shows a QR", async () => {
    const sim = await simulator()
    const auth = makeMemoryAuthState()
    const client = baileys(sim, auth)
    const { qr } = await client.waitFor((update) => typeof update.qr === "string")
    const [ref, noiseKey, identityKey, advSecret] = qr!.split("#")[1]!.split(",")
    expect(ref).toBeTruthy()
    expect(noiseKey).toBe(Buffer.from(auth.creds.noiseKey.public).toString("base64"))
    expect(identityKey).toBe(Buffer.from(auth.creds.signedIdentityKey.public).toString("base64"))
    expect(advSecret).toBe(auth.creds.advSecretKey)
  })

  it("a scanned QR links the device: Baileys restarts on 515 and opens as the phone's number", async () => {
    const sim = await simulator()
    const auth = makeMemoryAuthState()
    const first = baileys(sim, auth)
    const { qr } = await first.waitFor((update) => typeof update.qr === "string")

    const linked = await sim.scan(qr!, { phoneNumber: PHONE })
    expect(linked.jid).toBe(`${PHONE}:1@s.whatsapp.net`)

    const closed = await first.waitFor((update) => update.connection === "close")
    expect(statusCodeOf(closed)).toBe(515)
    expect(auth.creds.me?.id).toBe(linked.jid)

    const second = baileys(sim, auth)
    await second.waitFor((update) => update.connection === "open")
    expect(auth.creds.me?.id).toBe(`${PHONE}:1@s.whatsapp.net`)
    expect(auth.creds.me?.lid).toBe(linked.lid)
    expect(sim.connectionsOf(PHONE)).toHaveLength(1)
  })

  it("the phone refuses a QR that no connected companion is showing", async () => {
    const sim = await simulator()
    const client = baileys(sim, makeMemoryAuthState())
    const { qr } = await client.waitFor((update) => typeof update.qr === "string")
    const [prefix, data] = qr!.split("#")
    const forged = `${prefix}#${data!.replace(/^[^,]+/, "not-a-ref")}`
    await expect(sim.scan(forged, { phoneNumber: PHONE })).rejects.toThrow(/no connected companion/)
    expect(sim.account(PHONE)).toBeUndefined()
  })
})
