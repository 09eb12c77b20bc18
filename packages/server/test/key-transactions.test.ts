import { describe, expect, it } from "@effect/vitest"
import { addTransactionCapability, type SignalDataSet, type SignalKeyStore } from "@whiskeysockets/baileys"
import * as v8 from "node:v8"

/** What a key read returns here: counted after a full collection, to see who still holds one. */
class ReadValue {
  readonly bytes = Buffer.alloc(64 * 1024)
}

const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {} } as never

/** Baileys' key store with its transactions (as patched), over a store in memory that logs its writes. */
const keyStore = () => {
  const written: Array<SignalDataSet> = []
  const store: SignalKeyStore = {
    get: async (_type, ids) => Object.fromEntries(ids.map((id) => [id, new ReadValue() as never])),
    set: async (data) => {
      written.push(data)
    }
  }
  const keys = addTransactionCapability(store, quiet, { maxCommitRetries: 1, delayBetweenTriesMs: 0 })
  return { keys, written }
}

const liveReadValues = () => v8.queryObjects(ReadValue, { format: "count" }) as number

describe("Baileys' key transactions (the Baileys patch)", () => {
  it("two transactions of one socket never run at once, whatever their keys (a send's and a decryption's)", async () => {
    const { keys } = keyStore()
    const steps: Array<string> = []
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    const decryption = keys.transaction(async () => {
      steps.push("decryption begins")
      await held
      steps.push("decryption ends")
    }, "15557800001@s.whatsapp.net")
    const send = keys.transaction(async () => {
      steps.push("send begins")
    }, "15551260001@s.whatsapp.net")
    // the send waits for the decryption however long it takes
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(steps).toEqual(["decryption begins"])
    release()
    await Promise.all([decryption, send])
    expect(steps).toEqual(["decryption begins", "decryption ends", "send begins"])
  })

  it("a timer begun inside a transaction holds nothing the transaction read once it ended, and what it writes then is stored", async () => {
    const { keys, written } = keyStore()
    const before = liveReadValues()
    let fired!: Promise<void>
    // as Baileys' recent-message cache does for each message sent: a timer set inside the send's transaction
    const timer = await keys.transaction(async () => {
      await keys.get("session", ["15557800001.0"])
      let done!: () => void
      fired = new Promise((resolve) => (done = resolve))
      return setTimeout(() => {
        void Promise.resolve(
          keys.set({ "sender-key": { later: Buffer.from("written after the end") } })
        ).then(done)
      }, 200)
    }, "15551260001@s.whatsapp.net")
    try {
      // unpatched, the timer's async context held the transaction's cache until it fired (5 min there)
      expect(liveReadValues() - before).toBe(0)
      await fired
      // unpatched, it went into the ended transaction's mutations, never committed
      expect(written).toContainEqual({ "sender-key": { later: Buffer.from("written after the end") } })
    } finally {
      clearTimeout(timer)
    }
  })
})
