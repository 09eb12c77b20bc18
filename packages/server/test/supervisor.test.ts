import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { TransportEvent } from "../src/channels/transport.ts"
import { testDatabase } from "./support/database.ts"
import { eventually, pause } from "./support/eventually.ts"
import { gatewayEnvironment, newCustomerKey, type RunningGateway, startGateway } from "./support/gateway.ts"
import { request } from "./support/http.ts"

/** A gateway on the test clock, with one connected channel. */
const connectedChannel = Effect.gen(function* () {
  const database = yield* testDatabase
  const gateway = yield* startGateway(yield* gatewayEnvironment(database.url))
  const key = yield* newCustomerKey(gateway)
  const channel = (yield* request(gateway.api, "POST", "/v1/channels", { key, body: {} })).body.id as string
  yield* request(gateway.api, "POST", `/v1/channels/${channel}/connect`, { key, body: { method: "qr" } })
  expect(yield* eventually(Effect.sync(() => gateway.whatsapp.isOpen(channel)))).toBe(true)
  yield* gateway.whatsapp.pair(channel, "+15557654321")
  const status = (gateway_: RunningGateway) =>
    Effect.map(request(gateway_.api, "GET", `/v1/channels/${channel}`, { key }), (reply) => reply.body)
  expect(yield* eventually(Effect.map(status(gateway), (c) => c.status === "connected"))).toBe(true)
  return { gateway, key, channel, status: () => status(gateway) }
})

/** Lets the actors run after the clock moved: real time passes, the test clock does not. */
const settle = pause(150)

/** Right after the clock moved: the actor must act within half a real second, far less than any backoff. */
const soon = (check: Effect.Effect<boolean>) => eventually(check, 20)

describe("the channel supervisor", () => {
  it.effect(
    "reconnects with exponential backoff, and resets it after a stable period",
    () =>
      Effect.gen(function* () {
        const { gateway, channel, status } = yield* connectedChannel
        const { whatsapp } = gateway
        const close = (code: number) => whatsapp.emit(channel, TransportEvent.Close({ code, reason: "" }))
        const connects = () => whatsapp.connects(channel)

        const before = connects()
        yield* close(503)
        expect(yield* eventually(Effect.map(status(), (c) => c.status === "reconnecting"))).toBe(true)
        yield* TestClock.adjust("700 millis")
        yield* settle
        expect(connects(), "no reconnect before the first backoff (1 s ± 20 %)").toBe(before)
        yield* TestClock.adjust("600 millis")
        expect(yield* soon(Effect.sync(() => connects() === before + 1))).toBe(true)
        expect(yield* eventually(Effect.map(status(), (c) => c.status === "connected"))).toBe(true)

        // a second drop soon after waits twice as long
        yield* close(503)
        yield* eventually(Effect.map(status(), (c) => c.status === "reconnecting"))
        yield* TestClock.adjust("1500 millis")
        yield* settle
        expect(connects(), "no reconnect before the second backoff (2 s ± 20 %)").toBe(before + 1)
        yield* TestClock.adjust("1 second")
        expect(yield* soon(Effect.sync(() => connects() === before + 2))).toBe(true)
        expect(yield* eventually(Effect.map(status(), (c) => c.status === "connected"))).toBe(true)

        // connected for longer than the stable period: the next drop starts again at 1 s
        yield* TestClock.adjust("61 seconds")
        yield* settle
        yield* close(408)
        yield* eventually(Effect.map(status(), (c) => c.status === "reconnecting"))
        yield* TestClock.adjust("1300 millis")
        expect(yield* soon(Effect.sync(() => connects() === before + 3))).toBe(true)
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
          expect(yield* soon(Effect.sync(() => whatsapp.connects(channel) === before + i))).toBe(true)
          expect(yield* eventually(Effect.sync(() => whatsapp.isOpen(channel)))).toBe(true)
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
        const key = yield* newCustomerKey(gateway)
        const channel = (yield* request(gateway.api, "POST", "/v1/channels", { key, body: {} })).body
          .id as string
        yield* request(gateway.api, "POST", `/v1/channels/${channel}/connect`, {
          key,
          body: { method: "qr" }
        })
        expect(yield* eventually(Effect.sync(() => whatsapp.isOpen(channel)))).toBe(true)
        yield* whatsapp.emit(channel, TransportEvent.Close({ code: 515, reason: "restart required" }))
        expect(yield* soon(Effect.sync(() => whatsapp.connects(channel) === 2))).toBe(true)
        yield* eventually(Effect.sync(() => whatsapp.isOpen(channel)))
        yield* whatsapp.emit(channel, TransportEvent.Close({ code: 515, reason: "restart required" }))
        yield* settle
        expect(whatsapp.connects(channel), "no immediate third connect").toBe(2)
        yield* TestClock.adjust("2500 millis")
        expect(yield* soon(Effect.sync(() => whatsapp.connects(channel) === 3))).toBe(true)
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
          const { gateway, channel, status: current } = yield* connectedChannel
          const { whatsapp } = gateway
          const before = whatsapp.connects(channel)
          yield* whatsapp.emit(channel, TransportEvent.Close({ code, reason: "" }))
          expect(yield* eventually(Effect.map(current(), (c) => c.status === status))).toBe(true)
          const final = yield* current()
          expect(final.status_reason).toMatch(reason)
          yield* TestClock.adjust("1 hour")
          yield* settle
          expect(whatsapp.connects(channel)).toBe(before)
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
        const { gateway, channel, status } = yield* connectedChannel
        const { whatsapp } = gateway
        yield* whatsapp.failConnects(channel, 100)
        const before = whatsapp.connects(channel)
        yield* whatsapp.emit(channel, TransportEvent.Close({ code: 500, reason: "" }))
        yield* eventually(Effect.map(status(), (c) => c.status === "reconnecting"))
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
        const { gateway, channel, status } = yield* connectedChannel
        const { whatsapp } = gateway
        yield* whatsapp.failConnects(channel, 100, false)
        const before = whatsapp.connects(channel)
        yield* whatsapp.emit(channel, TransportEvent.Close({ code: 503, reason: "" }))
        yield* eventually(Effect.map(status(), (c) => c.status === "reconnecting"))
        yield* settle
        yield* TestClock.adjust("2 seconds")
        expect(yield* eventually(Effect.map(status(), (c) => c.status === "failed"))).toBe(true)
        expect((yield* status()).status_reason).toBe("scripted connect failure")
        yield* TestClock.adjust("1 hour")
        yield* settle
        expect(whatsapp.connects(channel)).toBe(before + 1)
      }).pipe(Effect.scoped),
    60_000
  )
})
