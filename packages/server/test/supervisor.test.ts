import { describe, expect, it } from "@effect/vitest"
import type { ChannelStatus } from "@whatisup/domain"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { TransportEvent } from "../src/channels/transport.ts"
import { testDatabase } from "./support/database.ts"
import { newCustomer } from "./support/admin.ts"
import { waitForStatus } from "./support/api.ts"
import { gatewayEnvironment, startGateway } from "./support/gateway.ts"
import { pause, staysTrue, waitUntil } from "./support/waits.ts"

/** A gateway on the test clock, with one connected channel. */
const connectedChannel = Effect.gen(function* () {
  const database = yield* testDatabase
  const gateway = yield* startGateway(yield* gatewayEnvironment(database.url))
  const { client } = yield* newCustomer(gateway)
  const { id: channel } = yield* client.channels.create({ headers: {}, payload: {} })
  yield* client.channels.connect({ params: { id: channel }, payload: { method: "qr" } })
  yield* waitUntil(
    "the channel's connection is open",
    Effect.sync(() => gateway.whatsapp.isOpen(channel))
  )
  yield* gateway.whatsapp.pair(channel, "+15557654321")
  yield* waitForStatus(client, channel, "connected")
  /** Waits until the channel has this status, and answers it as it then was. */
  const becomes = (status: ChannelStatus) => waitForStatus(client, channel, status)
  return { gateway, channel, becomes }
})

/** Lets the actors run after the clock moved: real time passes, the test clock does not. */
const settle = pause(150)

/** Over the same real time as `settle`: what must not happen yet does not. */
const stillNot = (label: string, check: Effect.Effect<boolean>) => staysTrue(label, check, { forMillis: 150 })

/** Right after the clock moved: the actor must act within half a real second, far less than any backoff. */
const soon = (label: string, check: Effect.Effect<boolean>) => waitUntil(label, check, { attempts: 20 })

describe("the channel supervisor", () => {
  it.effect(
    "reconnects with exponential backoff, and resets it after a stable period",
    () =>
      Effect.gen(function* () {
        const { gateway, channel, becomes } = yield* connectedChannel
        const { whatsapp } = gateway
        const close = (code: number) => whatsapp.emit(channel, TransportEvent.Close({ code, reason: "" }))
        const connects = () => whatsapp.connects(channel)

        const before = connects()
        yield* close(503)
        yield* becomes("reconnecting")
        yield* TestClock.adjust("700 millis")
        yield* stillNot(
          "no reconnect before the first backoff (1 s ± 20 %)",
          Effect.sync(() => connects() === before)
        )
        yield* TestClock.adjust("600 millis")
        yield* soon(
          "a reconnect once the first backoff is over",
          Effect.sync(() => connects() === before + 1)
        )
        yield* becomes("connected")

        // a second drop soon after waits twice as long
        yield* close(503)
        yield* becomes("reconnecting")
        yield* TestClock.adjust("1500 millis")
        yield* stillNot(
          "no reconnect before the second backoff (2 s ± 20 %)",
          Effect.sync(() => connects() === before + 1)
        )
        yield* TestClock.adjust("1 second")
        yield* soon(
          "a reconnect once the second backoff is over",
          Effect.sync(() => connects() === before + 2)
        )
        yield* becomes("connected")

        // connected for longer than the stable period: the next drop starts again at 1 s
        yield* TestClock.adjust("61 seconds")
        yield* settle
        yield* close(408)
        yield* becomes("reconnecting")
        yield* TestClock.adjust("1300 millis")
        yield* soon(
          "after a stable period, a reconnect after the first backoff again",
          Effect.sync(() => connects() === before + 3)
        )
      }).pipe(Effect.scoped),
    60_000
  )

  it.effect(
    "515 after a login reconnects at once, every time",
    () =>
      Effect.gen(function* () {
        const { gateway, channel } = yield* connectedChannel
        const { whatsapp } = gateway
        const before = whatsapp.connects(channel)
        for (let i = 1; i <= 3; i++) {
          yield* whatsapp.emit(channel, TransportEvent.Close({ code: 515, reason: "restart required" }))
          yield* soon(
            `reconnect ${i} follows the 515 at once`,
            Effect.sync(() => whatsapp.connects(channel) === before + i)
          )
          yield* waitUntil(
            `connection ${i} is open`,
            Effect.sync(() => whatsapp.isOpen(channel))
          )
          yield* settle
        }
      }).pipe(Effect.scoped),
    60_000
  )

  it.effect(
    "a second 515 with no login between them backs off instead of looping",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const gateway = yield* startGateway(yield* gatewayEnvironment(database.url))
        const { whatsapp } = gateway
        const { client } = yield* newCustomer(gateway)
        const { id: channel } = yield* client.channels.create({ headers: {}, payload: {} })
        yield* client.channels.connect({ params: { id: channel }, payload: { method: "qr" } })
        yield* waitUntil(
          "the first connection is open",
          Effect.sync(() => whatsapp.isOpen(channel))
        )
        yield* whatsapp.emit(channel, TransportEvent.Close({ code: 515, reason: "restart required" }))
        yield* soon(
          "the first 515 reconnects at once",
          Effect.sync(() => whatsapp.connects(channel) === 2)
        )
        yield* waitUntil(
          "the second connection is open",
          Effect.sync(() => whatsapp.isOpen(channel))
        )
        yield* whatsapp.emit(channel, TransportEvent.Close({ code: 515, reason: "restart required" }))
        yield* stillNot(
          "no immediate third connect",
          Effect.sync(() => whatsapp.connects(channel) === 2)
        )
        yield* TestClock.adjust("2500 millis")
        yield* soon(
          "a third connect after the backoff",
          Effect.sync(() => whatsapp.connects(channel) === 3)
        )
      }).pipe(Effect.scoped),
    60_000
  )

  for (const [code, status, reason] of [
    [401, "logged_out", /logged_out_by_phone/],
    [403, "failed", /403/],
    [405, "failed", /whatsapp_version_outdated.*WHATISUP_WA_VERSION/],
    [411, "failed", /411/],
    [440, "failed", /connection_replaced.*440/]
  ] as const) {
    it.effect(
      `${code} is terminal: ${status} with a clear reason, and no reconnect however long`,
      () =>
        Effect.gen(function* () {
          const { gateway, channel, becomes } = yield* connectedChannel
          const { whatsapp } = gateway
          const before = whatsapp.connects(channel)
          yield* whatsapp.emit(channel, TransportEvent.Close({ code, reason: "" }))
          const final = yield* becomes(status)
          expect(final.status_reason).toMatch(reason)
          yield* TestClock.adjust("1 hour")
          yield* stillNot(
            "no reconnect an hour later",
            Effect.sync(() => whatsapp.connects(channel) === before)
          )
          expect(whatsapp.isOpen(channel)).toBe(false)
          if (code === 401) expect(yield* whatsapp.isPaired(channel)).toBe(false)
        }).pipe(Effect.scoped),
      60_000
    )
  }

  it.effect(
    "a connect that keeps failing backs off instead of looping",
    () =>
      Effect.gen(function* () {
        const { gateway, channel, becomes } = yield* connectedChannel
        const { whatsapp } = gateway
        yield* whatsapp.failConnects(channel, 100)
        const before = whatsapp.connects(channel)
        yield* whatsapp.emit(channel, TransportEvent.Close({ code: 500, reason: "" }))
        yield* becomes("reconnecting")
        // 1 s + 2 s + 4 s + 8 s (each ± 20 %) is at most 18 s: four tries, not hundreds
        for (let i = 0; i < 18; i++) {
          yield* TestClock.adjust("1 second")
          yield* pause(20)
        }
        yield* settle
        const tries = whatsapp.connects(channel) - before
        expect(tries).toBeGreaterThanOrEqual(3)
        expect(tries).toBeLessThanOrEqual(5)
      }).pipe(Effect.scoped),
    60_000
  )

  it.effect(
    "a connect that cannot succeed fails the channel with its reason, once",
    () =>
      Effect.gen(function* () {
        const { gateway, channel, becomes } = yield* connectedChannel
        const { whatsapp } = gateway
        yield* whatsapp.failConnects(channel, 100, false)
        const before = whatsapp.connects(channel)
        yield* whatsapp.emit(channel, TransportEvent.Close({ code: 503, reason: "" }))
        yield* becomes("reconnecting")
        yield* settle
        yield* TestClock.adjust("2 seconds")
        expect((yield* becomes("failed")).status_reason).toBe("scripted connect failure")
        yield* TestClock.adjust("1 hour")
        yield* stillNot(
          "no connect after the failure",
          Effect.sync(() => whatsapp.connects(channel) === before + 1)
        )
      }).pipe(Effect.scoped),
    60_000
  )
})
