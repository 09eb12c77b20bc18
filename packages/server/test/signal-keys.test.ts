import { describe, expect, it } from "@effect/vitest"
import { initAuthCreds } from "@whiskeysockets/baileys"
import { Effect } from "effect"
import type { AuthStateStore } from "../src/channels/loginStore.ts"
import { type KeyMemory, makeKeyMemories, signalKeys } from "../src/whatsapp/baileysTransport.ts"

/**
 * The key store Baileys is handed remembers what it last read or wrote: a read that a write
 * overtook, or a write that failed, must not leave an old value behind, or Baileys would encrypt
 * with a Signal session step the phone has moved past.
 */

const session = (step: number) => ({ step })

/** A login store whose reads see the store as it was when they began, and end only when let go. */
const makeStore = () => {
  const values = new Map<string, string>()
  const reads: Array<string> = []
  let failWrites = false
  const held: Array<() => void> = []
  let holdReads = false
  const store: AuthStateStore = {
    read: (type, ids) =>
      Effect.promise(async () => {
        reads.push(...ids.map((id) => `${type}/${id}`))
        const seen = Object.fromEntries(
          ids.flatMap((id) => (values.has(`${type}/${id}`) ? [[id, values.get(`${type}/${id}`)!]] : []))
        )
        if (holdReads) await new Promise<void>((resolve) => held.push(resolve))
        return seen
      }),
    write: (changes) =>
      Effect.suspend(() => {
        if (failWrites) return Effect.die(new Error("the database went away"))
        for (const { type, id, value } of changes) {
          if (value === null) values.delete(`${type}/${id}`)
          else values.set(`${type}/${id}`, value)
        }
        return Effect.void
      })
  }
  return {
    store,
    reads,
    holdReads: (hold: boolean) => {
      holdReads = hold
    },
    releaseReads: () => held.splice(0).forEach((resolve) => resolve()),
    failWrites: (fail: boolean) => {
      failWrites = fail
    }
  }
}

/** A connection's key store over `login`, remembering in `memory` (a connection of a channel of its own unless told). */
const keysOver = (login: ReturnType<typeof makeStore>, memory: KeyMemory = makeKeyMemories().open("ch")) =>
  signalKeys(
    initAuthCreds(),
    login.store,
    (effect) => Effect.runPromise(effect),
    (changes) => Effect.runPromise(login.store.write(changes)),
    memory
  )

describe("the Signal keys a connection remembers", () => {
  it("a key written or read once is not read again", async () => {
    const login = makeStore()
    const keys = keysOver(login)
    await keys.set({ session: { "a.0": session(1) as never } })
    expect(await keys.get("session", ["a.0", "b.0"])).toEqual({ "a.0": session(1) })
    expect(await keys.get("session", ["a.0", "b.0"])).toEqual({ "a.0": session(1) })
    // b.0 is absent: read once, and remembered as absent
    expect(login.reads).toEqual(["session/b.0"])
  })

  it("a read overtaken by a write is not remembered: the next read asks the store again", async () => {
    const login = makeStore()
    const keys = keysOver(login)
    await keys.set({ session: { "a.0": session(1) as never } })
    const fresh = keysOver(login)
    login.holdReads(true)
    const early = fresh.get("session", ["a.0"])
    await new Promise((resolve) => setImmediate(resolve))
    // the session steps forward while the read (which saw step 1) is still under way
    await fresh.set({ session: { "a.0": session(2) as never } })
    login.holdReads(false)
    login.releaseReads()
    expect(await early).toEqual({ "a.0": session(1) })
    expect(await fresh.get("session", ["a.0"])).toEqual({ "a.0": session(2) })
  })

  it("a write an ended connection of the channel finishes late makes the next connection forget the key", async () => {
    const login = makeStore()
    const memories = makeKeyMemories()
    const endedMemory = memories.open("ch")
    const ended = keysOver(login, endedMemory)
    await ended.set({ session: { "a.0": session(1) as never } })
    endedMemory.close()
    // the next connection reads and remembers step 1; the ended one's key transaction then stores step 2
    const next = keysOver(login, memories.open("ch"))
    expect(await next.get("session", ["a.0"])).toEqual({ "a.0": session(1) })
    await ended.set({ session: { "a.0": session(2) as never } })
    expect(await next.get("session", ["a.0"])).toEqual({ "a.0": session(2) })
    // another channel's memory is its own
    const other = keysOver(login, memories.open("other"))
    await other.set({ session: { "b.0": session(1) as never } })
    expect(await next.get("session", ["a.0"])).toEqual({ "a.0": session(2) })
    expect(login.reads).toEqual(["session/a.0", "session/a.0"])
  })

  it("of two writes of a key under way, only the later one's value is remembered", async () => {
    const login = makeStore()
    const memories = makeKeyMemories()
    const first = keysOver(login, memories.open("ch"))
    const second = keysOver(login, memories.open("ch"))
    // both begun before either has ended; the store takes them in the order begun
    const earlier = first.set({ session: { "a.0": session(1) as never } })
    const later = second.set({ session: { "a.0": session(2) as never } })
    await Promise.all([earlier, later])
    expect(await first.get("session", ["a.0"])).toEqual({ "a.0": session(2) })
    expect(await second.get("session", ["a.0"])).toEqual({ "a.0": session(2) })
  })

  it("nothing is kept for a channel once its connections have ended and its writes are done", async () => {
    const login = makeStore()
    const memories = makeKeyMemories()
    const memory = memories.open("ch")
    const keys = keysOver(login, memory)
    await keys.set({ session: { "a.0": session(1) as never } })
    expect(memories.size()).toBe(1)
    memory.close()
    expect(memories.size()).toBe(0)
    await keys.set({ session: { "a.0": session(2) as never } })
    expect(memories.size()).toBe(0)
  })

  it("a write that failed is forgotten: the next read asks the store", async () => {
    const login = makeStore()
    const keys = keysOver(login)
    await keys.set({ session: { "a.0": session(1) as never } })
    login.failWrites(true)
    await expect(keys.set({ session: { "a.0": session(2) as never } })).rejects.toThrow()
    login.failWrites(false)
    expect(await keys.get("session", ["a.0"])).toEqual({ "a.0": session(1) })
    expect(login.reads).toEqual(["session/a.0"])
  })

  it("remembers a few keys, the most recently used, and none longer than 8 KiB", async () => {
    const login = makeStore()
    const keys = keysOver(login)
    const ids = Array.from({ length: 40 }, (_, i) => `c${i}.0`)
    await keys.set({ session: Object.fromEntries(ids.map((id, i) => [id, session(i)])) as never })
    await keys.set({ session: { "big.0": { padding: "x".repeat(9 * 1024) } as never } })
    await keys.get("session", [...ids, "big.0"])
    // the big one, and those the 16 most recent pushed out, were read from the store
    expect(login.reads).toContain("session/big.0")
    expect(login.reads).toContain("session/c0.0")
    expect(login.reads.length).toBeLessThan(ids.length + 1)
  })
})
