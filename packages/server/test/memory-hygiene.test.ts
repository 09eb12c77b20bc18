import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { AsyncLocalStorage } from "node:async_hooks"
import * as v8 from "node:v8"
import {
  type DeviceAddress,
  decryptForPhone,
  encryptForDevice,
  issueBundle,
  makePhoneKeys,
  type PhoneKeys,
  signalBundle
} from "@whatisup/wa-simulator/phone-keys"
import { RetryCounters } from "../src/whatsapp/baileysTransport.ts"
import {
  baileysTransport,
  makeLoginStore,
  nextEvent,
  noMessages,
  tagged,
  testChannel
} from "./support/baileys.ts"
import { simulator } from "./support/simulator.ts"
import { waitUntil } from "./support/waits.ts"

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
    "item 10: a socket that logged in and ended leaves no AsyncLocalStorage enabled, and is collected within seconds",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        const transport = yield* baileysTransport(sim.url)
        const storagesBefore = enabledStorages()
        const countersBefore = liveRetryCounters()
        const login = makeLoginStore()
        // an actor of its own each time, held by nothing here once its connection closed
        const connect = () =>
          transport.connect({
            channelId: testChannel,
            pairing: { method: "qr" },
            authState: login.store,
            holdsLease: () => true,
            actor: {},
            ...noMessages
          })
        const firstConnect = performance.now()
        yield* Effect.scoped(
          Effect.gen(function* () {
            const pairing = yield* connect()
            const { qr } = yield* nextEvent("the QR", pairing.events, tagged("Qr"))
            yield* Effect.promise(() => sim.scan(qr, { phoneNumber: "15550003456" }))
            yield* nextEvent("the 515 after the scan", pairing.events, tagged("Close"))
          })
        )
        // a login stores its pre-keys in one of Baileys' transactions, which runs its storage
        yield* Effect.scoped(
          Effect.gen(function* () {
            const loggedIn = yield* connect()
            yield* nextEvent("the connection opens", loggedIn.events, tagged("Open"))
            yield* waitUntil(
              "the pre-keys are stored",
              Effect.sync(() => login.writes.some((write) => write.changes.some((c) => c.type === "pre-key")))
            )
          })
        )
        yield* waitUntil(
          "every storage the sockets ran is disabled with them",
          Effect.sync(() => enabledStorages() === storagesBefore),
          { attempts: 20, everyMillis: 100 }
        )
        // Baileys' pre-key upload left a 30 s timer holding the whole socket after every login (patched):
        // a socket cut by the 515 in the middle of its upload is still held until that timeout, so the
        // bound is 40 s from the first connect; an unbounded hold (a leak) fails it
        yield* waitUntil(
          "the sockets are collected, their retry counters with them",
          Effect.sync(
            () => liveRetryCounters() === countersBefore || performance.now() > firstConnect + 40_000
          ),
          { attempts: 1000, everyMillis: 200 }
        )
        expect(liveRetryCounters()).toBe(countersBefore)
      }).pipe(Effect.scoped),
    90_000
  )

  it.live(
    "a conversation's Signal session keeps its size however long it goes back and forth",
    () =>
      Effect.promise(async () => {
        // two accounts' devices with the libsignal the gateway runs (as patched), as the simulator's phones use it
        const alice = { keys: makePhoneKeys(), address: { user: "15550001111", device: 0 } }
        const bob = { keys: makePhoneKeys(), address: { user: "15550002222", device: 0 } }
        const message = async (
          from: { keys: PhoneKeys; address: DeviceAddress },
          to: { keys: PhoneKeys; address: DeviceAddress },
          text: string
        ) => {
          const bundle =
            from === alice && to.keys.sessions.size === 0 ? signalBundle(issueBundle(to.keys)) : undefined
          const { type, ciphertext } = await encryptForDevice(
            from.keys,
            to.address,
            { conversation: text },
            bundle
          )
          const decrypted = await decryptForPhone(to.keys, from.address, type, ciphertext)
          expect(decrypted.conversation).toBe(text)
        }
        // each reply is a step of the ratchet: a new receiving chain on each side
        const exchange = async (rounds: number) => {
          for (let i = 0; i < rounds; i++) {
            await message(alice, bob, `question ${i}`)
            await message(bob, alice, `answer ${i}`)
          }
        }
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
})
