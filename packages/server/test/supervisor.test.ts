import { describe, expect, it } from "@effect/vitest"
import type { ChannelStatus } from "@whatisup/domain"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { TransportEvent } from "../src/channels/transport.ts"
import { sqlFor, testDatabase } from "./support/database.ts"
import { newCustomer } from "./support/admin.ts"
import { waitForStatus } from "./support/api.ts"
import { gatewayEnvironment, startGateway } from "./support/gateway.ts"
import { pause, staysTrue, waitFor, waitUntil } from "./support/waits.ts"

/** A gateway on the test clock, with one channel connecting by QR (its connection open). */
const pairingChannel = Effect.gen(function* () {
  const database = yield* testDatabase
  const gateway = yield* startGateway(yield* gatewayEnvironment(database.url))
  const { client } = yield* newCustomer(gateway)
  const { id: channel } = yield* client.channels.create({ headers: {}, payload: {} })
  yield* client.channels.connect({ params: { id: channel }, payload: { method: "qr" } })
  yield* waitUntil(
    "the channel's connection is open",
    Effect.sync(() => gateway.whatsapp.isOpen(channel))
  )
  return { gateway, client, channel }
})

/** A gateway on the test clock, with one connected channel. */
const connectedChannel = Effect.gen(function* () {
  const { gateway, client, channel } = yield* pairingChannel
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
    "a 515 after a login reconnects at once; a second one in a row waits the backoff; a stable connection starts afresh",
    () =>
      Effect.gen(function* () {
        const { gateway, channel } = yield* connectedChannel
        const { whatsapp } = gateway
        const before = whatsapp.connects(channel)
        const restart = whatsapp.emit(
          channel,
          TransportEvent.Close({ code: 515, reason: "restart required" })
        )
        const connects = (n: number) => Effect.sync(() => whatsapp.connects(channel) === before + n)
        const open = (label: string) =>
          waitUntil(
            label,
            Effect.sync(() => whatsapp.isOpen(channel))
          )

        yield* restart
        yield* soon("the first 515 reconnects at once", connects(1))
        yield* open("the second connection is open")
        yield* settle

        yield* restart
        yield* stillNot("a second 515 in a row does not reconnect at once", connects(1))
        yield* TestClock.adjust("1300 millis")
        yield* soon("it reconnects after the first backoff (1 s ± 20 %)", connects(2))
        yield* open("the third connection is open")

        // connected for longer than the stable period: a 515 is once again WhatsApp's plain request
        yield* TestClock.adjust("61 seconds")
        yield* settle
        yield* restart
        yield* soon("after a stable minute, a 515 reconnects at once", connects(3))
      }).pipe(Effect.scoped),
    60_000
  )

  it.effect(
    "a 440 while the lease is still held reconnects after a backoff; three in a row fail the channel as connection_replaced",
    () =>
      Effect.gen(function* () {
        const { gateway, channel, becomes } = yield* connectedChannel
        const { whatsapp } = gateway
        const before = whatsapp.connects(channel)
        const replaced = whatsapp.emit(channel, TransportEvent.Close({ code: 440, reason: "replaced" }))
        const connects = (n: number) => Effect.sync(() => whatsapp.connects(channel) === before + n)

        yield* replaced
        yield* becomes("reconnecting")
        yield* stillNot("no reconnect before the backoff", connects(0))
        yield* TestClock.adjust("1300 millis")
        yield* soon("the first 440 reconnects after the first backoff", connects(1))
        yield* waitUntil(
          "connected again",
          Effect.sync(() => whatsapp.isOpen(channel))
        )
        yield* whatsapp.pair(channel, "+15557654321")
        yield* becomes("connected")

        yield* replaced
        yield* becomes("reconnecting")
        yield* TestClock.adjust("2500 millis")
        yield* soon("the second 440 reconnects after the second backoff", connects(2))
        yield* waitUntil(
          "connected once more",
          Effect.sync(() => whatsapp.isOpen(channel))
        )

        yield* replaced
        const final = yield* becomes("failed")
        expect(final.status_reason).toMatch(/connection_replaced.*440/)
        yield* TestClock.adjust("1 hour")
        yield* stillNot("no reconnect after connection_replaced", connects(2))
      }).pipe(Effect.scoped),
    60_000
  )

  it.effect(
    "a 440 once the lease went to another node stops the actor quietly: no reconnect, no failure",
    () =>
      Effect.gen(function* () {
        const { gateway, channel, becomes } = yield* connectedChannel
        const { whatsapp } = gateway
        const sql = yield* sqlFor(gateway.databaseUrl)
        const before = whatsapp.connects(channel)
        yield* sql`INSERT INTO gateway_nodes (node_id, expires_at) VALUES ('another-node', now() + interval '1 hour')`
        yield* sql`
          UPDATE channel_leases SET owner = 'another-node', generation = generation + 1
          WHERE channel_id = ${channel}`
        yield* whatsapp.emit(channel, TransportEvent.Close({ code: 440, reason: "replaced" }))
        yield* waitUntil(
          "the socket is closed",
          Effect.sync(() => !whatsapp.isOpen(channel))
        )
        yield* TestClock.adjust("1 hour")
        yield* stillNot(
          "no reconnect here",
          Effect.sync(() => whatsapp.connects(channel) === before)
        )
        const current = yield* becomes("connected")
        expect(current.status_reason).toBeNull()
      }).pipe(Effect.scoped),
    60_000
  )

  it.effect(
    "a QR nobody scans stops after three rounds: the channel rests as created with reason qr_timeout",
    () =>
      Effect.gen(function* () {
        const { gateway, client, channel } = yield* pairingChannel
        const { whatsapp } = gateway
        // WhatsApp ends a pairing connection whose QR codes all expired with 408
        for (let round = 1; round <= 3; round++) {
          yield* waitUntil(
            `pairing round ${round} is open`,
            Effect.sync(() => whatsapp.isOpen(channel) && whatsapp.connects(channel) === round)
          )
          yield* whatsapp.emit(channel, TransportEvent.Close({ code: 408, reason: "QR refs attempts ended" }))
          yield* waitFor(
            `round ${round} is reported as a disconnect`,
            client.events.list({ query: { channel_id: channel, type: "channel.disconnected" } }),
            (page) => page.data.length >= round
          )
          yield* settle
          yield* TestClock.adjust("5 seconds")
        }
        const final = yield* waitForStatus(client, channel, "created")
        expect(final.status_reason).toBe("qr_timeout")
        yield* TestClock.adjust("1 hour")
        yield* stillNot(
          "no fourth round",
          Effect.sync(() => whatsapp.connects(channel) === 3)
        )
        const events = yield* client.events.list({
          query: { channel_id: channel, type: "channel.disconnected" }
        })
        // one event per round: the last one says pairing ended with it
        expect(events.data.map(({ data }) => ({ code: data.code, reason: data.reason }))).toEqual([
          { code: 408, reason: "qr_timeout" },
          { code: 408, reason: "QR refs attempts ended" },
          { code: 408, reason: "QR refs attempts ended" }
        ])
        // connecting again starts afresh
        yield* client.channels.connect({ params: { id: channel }, payload: { method: "qr" } })
        yield* waitUntil(
          "a new pairing round",
          Effect.sync(() => whatsapp.connects(channel) === 4)
        )
      }).pipe(Effect.scoped),
    60_000
  )

  it.effect(
    "a pairing code not entered ends pairing after its one round: no new code is asked for (each is a prompt on the phone)",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const gateway = yield* startGateway(yield* gatewayEnvironment(database.url))
        const { whatsapp } = gateway
        const { client } = yield* newCustomer(gateway)
        const { id: channel } = yield* client.channels.create({ headers: {}, payload: {} })
        // the connect waits for the code in steps of the (test) clock
        const connecting = yield* Effect.forkChild(
          client.channels.connect({
            params: { id: channel },
            payload: { method: "pairing_code", phone_number: "+15550001234" }
          })
        )
        yield* waitFor(
          "the pairing code is shown",
          client.channels.get({ params: { id: channel } }),
          (seen) => seen.pairing_code !== null
        )
        yield* TestClock.adjust("1 second")
        expect((yield* Fiber.join(connecting)).pairing_code).toBe("MEMO1234")
        expect(whatsapp.isOpen(channel)).toBe(true)
        // WhatsApp ends a pairing connection whose code was not entered in time
        yield* whatsapp.emit(channel, TransportEvent.Close({ code: 408, reason: "pairing code expired" }))
        const final = yield* waitForStatus(client, channel, "created")
        expect(final.status_reason).toBe("pairing_code_timeout")
        expect(final.pairing_code).toBeNull()
        yield* settle
        yield* TestClock.adjust("1 hour")
        yield* stillNot(
          "no second round",
          Effect.sync(() => whatsapp.connects(channel) === 1)
        )
        const events = yield* client.events.list({
          query: { channel_id: channel, type: "channel.disconnected" }
        })
        expect(events.data.map(({ data }) => ({ code: data.code, reason: data.reason }))).toEqual([
          { code: 408, reason: "pairing_code_timeout" }
        ])
        const audit = yield* client.audit.list({ query: { resource_type: "channel", resource_id: channel } })
        expect(audit.data[0]?.action).toBe("channel.pairing_code_timeout")
      }).pipe(Effect.scoped),
    60_000
  )

  it.effect(
    "a second 515 with no login between them backs off instead of looping",
    () =>
      Effect.gen(function* () {
        const { gateway, channel } = yield* pairingChannel
        const { whatsapp } = gateway
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
    [411, "failed", /411/]
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
