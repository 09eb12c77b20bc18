import { describe, expect, it } from "@effect/vitest"
import { MessageRetryManager, proto } from "@whiskeysockets/baileys"
import { Effect } from "effect"
import { AsyncLocalStorage } from "node:async_hooks"
import * as v8 from "node:v8"
import type { Simulator } from "@whatisup/wa-simulator"
import type { AuthStateStore } from "../src/channels/loginStore.ts"
import type { WhatsAppTransport } from "../src/channels/transport.ts"
import { RetryCounters } from "../src/whatsapp/baileysTransport.ts"
import {
  baileysTransport,
  type LoggedWrite,
  makeLoginStore,
  nextEvent,
  noMessages,
  tagged,
  testChannel
} from "./support/baileys.ts"
import { simulator } from "./support/simulator.ts"
import { waitUntil } from "./support/waits.ts"

const storesPreKeys = (write: LoggedWrite) => write.changes.some((change) => change.type === "pre-key")

/** How many retry counters are alive, after a full garbage collection. */
const liveRetryCounters = () => v8.queryObjects(RetryCounters, { format: "count" }) as number

/**
 * How many AsyncLocalStorages are enabled: Node 22 visits each of them on every async operation,
 * and keeps each (in its list of enabled ones) until it is disabled. Node's own field says it.
 */
const enabledStorages = () =>
  (v8.queryObjects(AsyncLocalStorage, { format: "summary" }) as ReadonlyArray<string>).filter((summary) =>
    /enabled: true/.test(summary)
  ).length

/** Connects on `login` as an actor of its own each time, held by nothing here once its connection closed. */
const connectOn = (transport: WhatsAppTransport["Service"], login: AuthStateStore) => () =>
  transport.connect({
    channelId: testChannel,
    pairing: { method: "qr" },
    authState: login,
    holdsLease: () => true,
    actor: {},
    ...noMessages
  })

/** Pairs by QR: the pairing connection ends with the 515 after the scan, and is closed then. */
const pairedByQr = (sim: Simulator, connect: ReturnType<typeof connectOn>, phoneNumber: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const pairing = yield* connect()
      const { qr } = yield* nextEvent("the QR", pairing.events, tagged("Qr"))
      yield* Effect.promise(() => sim.scan(qr, { phoneNumber }))
      yield* nextEvent("the 515 after the scan", pairing.events, tagged("Close"))
    })
  )

describe("per-channel memory is bounded and goes with the actor (issue 8, item 10)", () => {
  it("item 10: retry counters are bounded: past the latest 1,000 messages, the oldest are forgotten", () => {
    const counters = new RetryCounters()
    for (let i = 0; i <= RetryCounters.max; i++) counters.set(`message-${i}`, i)
    expect(counters.get("message-0")).toBeUndefined()
    expect(counters.get("message-1")).toBe(1)
    // asking again makes a message the latest
    counters.set("message-1", 2)
    counters.set("message-new", 0)
    expect(counters.get("message-1")).toBe(2)
    expect(counters.get("message-2")).toBeUndefined()
  })

  it("issue 14: Baileys' retry manager (patched) makes its two fixed-size caches at their first write, not with every socket", () => {
    const quiet = {
      level: "silent",
      child: () => quiet,
      trace() {},
      debug() {},
      info() {},
      warn() {},
      error() {}
    }
    // every cache of the manager is an LRUCache: one made with a first manager shows the class to count
    const probe = new MessageRetryManager(quiet as ConstructorParameters<typeof MessageRetryManager>[0], 5)
    const lruCache = (probe as unknown as { readonly retryCounters: object }).retryCounters.constructor
    const liveCaches = () => v8.queryObjects(lruCache as new () => unknown, { format: "count" }) as number
    const before = liveCaches()
    const manager = new MessageRetryManager(quiet as ConstructorParameters<typeof MessageRetryManager>[0], 5)
    const atStart = liveCaches()
    expect(
      atStart - before,
      "a new manager makes only its two caches without a size (retry counts, sessions recreated)"
    ).toBe(2)

    // never written: read as empty, cleared without making them
    expect(manager.getRecentMessage("15550001111@s.whatsapp.net", "A1")).toBeUndefined()
    expect(manager.hasSameBaseKey("15550001111.0", "A1", new Uint8Array([1, 2]))).toBe(false)
    manager.deleteBaseKey("15550001111.0", "A1")
    manager.clear()
    expect(liveCaches(), "reading, deleting and clearing make neither cache").toBe(atStart)

    const message = proto.Message.fromObject({ conversation: "hello" })
    manager.addRecentMessage("15550001111@s.whatsapp.net", "A1", message)
    expect(liveCaches(), "the first message sent or received makes the recent messages' cache").toBe(
      atStart + 1
    )
    expect(manager.getRecentMessage("15550001111@s.whatsapp.net", "A1")?.message).toBe(message)
    manager.saveBaseKey("15550001111.0", "A1", new Uint8Array([1, 2]))
    expect(liveCaches(), "the first base key saved makes the base keys' cache").toBe(atStart + 2)
    expect(manager.hasSameBaseKey("15550001111.0", "A1", new Uint8Array([1, 2]))).toBe(true)
    expect(manager.hasSameBaseKey("15550001111.0", "A1", new Uint8Array([1, 3]))).toBe(false)

    // a message answered is forgotten, through the index the cache keeps beside it
    manager.markRetrySuccess("A1")
    expect(manager.getRecentMessage("15550001111@s.whatsapp.net", "A1")).toBeUndefined()
    manager.clear()
    expect(manager.hasSameBaseKey("15550001111.0", "A1", new Uint8Array([1, 2]))).toBe(false)
    // the probe and the manager were alive through every count
    expect([probe, manager].every((m) => m instanceof MessageRetryManager)).toBe(true)
  })

  it.live(
    "item 10: retry counters are one per actor, kept across its reconnects, and gone once the actor is",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        const transport = yield* baileysTransport(sim.url)
        const before = liveRetryCounters()
        const connection = (actor: object) =>
          Effect.gen(function* () {
            const opened = yield* transport.connect({
              channelId: testChannel,
              pairing: { method: "qr" },
              authState: makeLoginStore().store,
              holdsLease: () => true,
              actor,
              ...noMessages
            })
            yield* nextEvent("the connection shows a QR", opened.events, tagged("Qr"))
          })

        // each actor only lives inside this scope: nothing of it is kept once it closes
        yield* Effect.scoped(
          Effect.gen(function* () {
            const reconnecting = {}
            yield* connection(reconnecting)
            yield* connection(reconnecting)
            expect(liveRetryCounters() - before, "one actor's connections share one").toBe(1)
            yield* connection({})
            expect(liveRetryCounters() - before, "the channel's next actor starts afresh").toBe(2)
          })
        )
        yield* waitUntil(
          "every retry counter is gone with its actor",
          // a closed socket may linger a moment (its last timers), holding its counters until then
          Effect.sync(() => liveRetryCounters() === before),
          { attempts: 80, everyMillis: 100 }
        )
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "the sockets share one AsyncLocalStorage for their key transactions: three logged in at once enable at most one more than before",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        const transport = yield* baileysTransport(sim.url)
        const storagesBefore = enabledStorages()
        const loggedIn = (phoneNumber: string) =>
          Effect.gen(function* () {
            const login = makeLoginStore()
            const connect = connectOn(transport, login.store)
            yield* pairedByQr(sim, connect, phoneNumber)
            // open until the test's scope closes; its login stores its pre-keys in a key transaction
            yield* nextEvent(`${phoneNumber} opens`, (yield* connect()).events, tagged("Open"))
            yield* waitUntil(
              `${phoneNumber}'s login stores its pre-keys`,
              Effect.sync(() =>
                login.writes.some((write) => storesPreKeys(write) && write.outcome === "stored")
              ),
              { attempts: 400 }
            )
          })
        const countersBefore = liveRetryCounters()
        yield* Effect.scoped(
          Effect.gen(function* () {
            yield* Effect.forEach(["15550003461", "15550003462", "15550003463"], loggedIn, {
              concurrency: "unbounded",
              discard: true
            })
            expect(enabledStorages() - storagesBefore).toBeLessThanOrEqual(1)
          })
        )
        // nothing of the sockets is left for the next test to count: gone once collected (see below)
        yield* waitUntil(
          "the sockets are collected",
          Effect.sync(() => liveRetryCounters() === countersBefore),
          { attempts: 150, everyMillis: 200 }
        )
      }).pipe(Effect.scoped),
    90_000
  )

  it.live(
    "item 10: a socket ended in the middle of its pre-key upload is collected within seconds (its transactions' storage is the one every socket shares: see above)",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        const transport = yield* baileysTransport(sim.url)
        const countersBefore = liveRetryCounters()
        const phoneNumber = "15550003456"
        // the login's pre-keys take 2 s to store: time enough to stall the phone before they are uploaded
        const login = makeLoginStore({ delayMillis: (write) => (storesPreKeys(write) ? 2000 : 0) })
        const connect = connectOn(transport, login.store)
        yield* pairedByQr(sim, connect, phoneNumber)
        // a login stores its pre-keys in one of Baileys' transactions, which runs its storage, then
        // uploads them: the socket ends with that upload unanswered, the phone stalled
        yield* Effect.scoped(
          Effect.gen(function* () {
            yield* connect()
            yield* waitUntil(
              "the login stores its pre-keys",
              Effect.sync(() => login.writes.some(storesPreKeys)),
              { attempts: 400 }
            )
            sim.stall(phoneNumber, true)
            yield* waitUntil(
              "the pre-keys are stored, and their upload goes unanswered",
              Effect.sync(
                () =>
                  login.writes.some((write) => storesPreKeys(write) && write.outcome === "stored") &&
                  sim.held(phoneNumber) > 0
              ),
              { attempts: 400 }
            )
          })
        )
        const ended = performance.now()
        // Baileys held an ended socket until its timers ran out (both patched): the pre-key upload's 30 s
        // timeout, and the 60 s of each query left waiting for an answer (here some 90 s in all). Collected
        // within 3 s of its end now; each check is a full GC, seconds on a loaded machine: hence 30 s
        // (a full parallel `npm test` once missed 10 s; unpatched, it is held about 88 s)
        yield* waitUntil(
          "the sockets are collected, their retry counters with them",
          Effect.sync(() => liveRetryCounters() === countersBefore || performance.now() > ended + 30_000),
          { attempts: 1000, everyMillis: 200 }
        )
        expect(liveRetryCounters()).toBe(countersBefore)
      }).pipe(Effect.scoped),
    90_000
  )
})
