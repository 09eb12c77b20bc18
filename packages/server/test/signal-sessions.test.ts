import { describe, expect, it, vi } from "@effect/vitest"
import { Effect } from "effect"
import * as util from "node:util"
import {
  type DeviceAddress,
  decryptForPhone,
  encryptForDevice,
  issueBundle,
  makePhoneKeys,
  type PhoneKeys,
  signalBundle
} from "@whatisup/wa-simulator/phone-keys"

interface Device {
  keys: PhoneKeys
  readonly address: DeviceAddress
}

/** Two accounts' devices with the libsignal the gateway runs (as patched), as the simulator's phones use it. */
const conversation = () => {
  const alice: Device = { keys: makePhoneKeys(), address: { user: "15550001111", device: 0 } }
  const bob: Device = { keys: makePhoneKeys(), address: { user: "15550002222", device: 0 } }
  /** A message, its session begun from a bundle of the recipient's when the sender has none with it. */
  const message = async (from: Device, to: Device, text: string) => {
    const bundle = from.keys.sessions.has(`${to.address.user}.${to.address.device}`)
      ? undefined
      : signalBundle(issueBundle(to.keys))
    const { type, ciphertext } = await encryptForDevice(from.keys, to.address, { conversation: text }, bundle)
    const decrypted = await decryptForPhone(to.keys, from.address, type, ciphertext)
    expect(decrypted.conversation).toBe(text)
  }
  /** Each reply is a step of the ratchet: a new receiving chain on each side. */
  const exchange = async (rounds: number) => {
    for (let i = 0; i < rounds; i++) {
      await message(alice, bob, `question ${i}`)
      await message(bob, alice, `answer ${i}`)
    }
  }
  return { alice, bob, message, exchange }
}

describe("Signal sessions (the libsignal patch)", () => {
  it.live(
    "a conversation's session keeps its size however long it goes back and forth",
    () =>
      Effect.promise(async () => {
        const { alice, bob, exchange } = conversation()
        // libsignal's serialized record is a plain object (its typings say bytes): its JSON is the size stored
        const sessionSize = () =>
          JSON.stringify(alice.keys.sessions.get(`${bob.address.user}.${bob.address.device}`)).length
        await exchange(20)
        const after20 = sessionSize()
        await exchange(100)
        // unpatched, each round kept its chain for ever: 4 to 5 times the size by now
        expect(sessionSize()).toBeLessThan(after20 * 1.2)
      }),
    60_000
  )

  it.live(
    "sessions opened, closed and replaced write no key material to the console (the gateway's logs)",
    () =>
      Effect.promise(async () => {
        const written: Array<string> = []
        const spies = (["log", "info", "warn", "error", "debug"] as const).map((level) =>
          vi.spyOn(console, level).mockImplementation((...args: Array<unknown>) => {
            written.push(args.map((arg) => (typeof arg === "string" ? arg : util.inspect(arg))).join(" "))
          })
        )
        try {
          const { alice, bob, message, exchange } = conversation()
          await exchange(3)
          // alice reinstalls: a new identity and no session, so bob's open session is closed for the new one
          alice.keys = makePhoneKeys()
          await exchange(3)
          await message(bob, alice, "still there?")
        } finally {
          for (const spy of spies) spy.mockRestore()
        }
        // unpatched, libsignal printed whole sessions: root and chain keys, the ratchet's private key
        expect(written.filter((line) => /privKey|rootKey|chainKey|SessionEntry/.test(line))).toEqual([])
      }),
    60_000
  )
})
