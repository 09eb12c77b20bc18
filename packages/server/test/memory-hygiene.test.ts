import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { AsyncLocalStorage } from "node:async_hooks"
import * as v8 from "node:v8"
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
})
