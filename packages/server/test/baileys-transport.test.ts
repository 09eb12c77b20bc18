import { ChannelId } from "@whatisup/domain"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, type Option, Queue } from "effect"
import type { AuthStateStore } from "../src/channels/loginStore.ts"
import { layerBaileysTransport } from "../src/whatsapp/baileysTransport.ts"
import { type TransportEvent, WhatsAppTransport } from "../src/channels/transport.ts"
import { GatewayConfigService, loadConfig } from "../src/config/config.ts"
import { ConfigProvider } from "effect"
import { pause, waitFor } from "./support/waits.ts"
import { simulator } from "./support/simulator.ts"

/** A login kept in memory: the store's contract without the database (fencing is tested elsewhere). */
const memoryAuthState = (): AuthStateStore => {
  const values = new Map<string, string>()
  return {
    read: (type, ids) =>
      Effect.sync(() =>
        Object.fromEntries(
          ids.flatMap((id) => (values.has(`${type}/${id}`) ? [[id, values.get(`${type}/${id}`)!]] : []))
        )
      ),
    write: (changes) =>
      Effect.sync(() => {
        for (const { type, id, value } of changes) {
          if (value === null) values.delete(`${type}/${id}`)
          else values.set(`${type}/${id}`, value)
        }
      })
  }
}

/** Waits for the next event the predicate accepts, skipping others, a bounded number of times. */
const next = <A extends TransportEvent>(
  label: string,
  events: Queue.Dequeue<TransportEvent>,
  accept: (event: TransportEvent) => event is A
) =>
  Effect.map(
    waitFor(label, Queue.poll(events), (event) => event._tag === "Some" && accept(event.value), {
      attempts: 400
    }),
    (event) => (event as Option.Some<A>).value
  )

describe("the Baileys transport against the simulator", () => {
  it.live(
    "a paired connection reports inbound messages, and what it sends is acked, delivered, read and decrypted by the phone",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        const config = yield* loadConfig.pipe(
          Effect.provideService(
            ConfigProvider.ConfigProvider,
            ConfigProvider.fromEnvRecord({ WHATISUP_WA_WS_URL: sim.url, LOG_LEVEL: "error" })
          )
        )
        const services = yield* Layer.build(
          layerBaileysTransport.pipe(Layer.provide(Layer.succeed(GatewayConfigService, config)))
        )
        const transport = Context.get(services, WhatsAppTransport)
        const authState = memoryAuthState()
        const channelId = ChannelId.make("ch_01testtesttesttesttesttest")
        let leaseHeld = true
        const holdsLease = () => leaseHeld
        const first = yield* transport.connect({
          channelId,
          pairing: { method: "qr" },
          authState,
          holdsLease
        })
        const qr = yield* next(
          "the QR",
          first.events,
          (e): e is Extract<TransportEvent, { _tag: "Qr" }> => e._tag === "Qr"
        )
        yield* Effect.promise(() => sim.scan(qr.qr, { phoneNumber: "15550001234" }))
        const restart = yield* next(
          "the 515 close after the scan",
          first.events,
          (e): e is Extract<TransportEvent, { _tag: "Close" }> => e._tag === "Close"
        )
        expect(restart.code).toBe(515)

        // the login came back through the store: a new connection opens without a QR
        const connection = yield* transport.connect({
          channelId,
          pairing: { method: "qr" },
          authState,
          holdsLease
        })
        const open = yield* next(
          "the connection opens with no QR",
          connection.events,
          (e): e is Extract<TransportEvent, { _tag: "Open" }> => e._tag === "Open"
        )
        expect(open.phoneNumber).toBe("+15550001234")

        sim.deliver("15550001234", { from: "15557778888", message: { conversation: "hello gateway" } })
        const inbound = yield* next(
          "the inbound message",
          connection.events,
          (e): e is Extract<TransportEvent, { _tag: "Inbound" }> => e._tag === "Inbound"
        )
        expect(inbound.from).toBe("15557778888@s.whatsapp.net")
        expect((inbound.message as { conversation?: string }).conversation).toBe("hello gateway")

        sim.setReceipts("15557778888", {
          ack: { delayMs: 300 },
          delivered: { delayMs: 400 },
          read: { delayMs: 500 }
        })
        yield* connection.send({
          id: "3EB0WHATISUP0001",
          to: "15557778888@s.whatsapp.net",
          content: { text: "hi back" }
        })
        const ack = yield* next(
          "the server ack of the sent message",
          connection.events,
          (e): e is Extract<TransportEvent, { _tag: "ServerAck" }> =>
            e._tag === "ServerAck" && e.messageId === "3EB0WHATISUP0001"
        )
        expect(ack.error).toBeNull()
        const delivered = yield* next(
          "the delivery receipt",
          connection.events,
          (e): e is Extract<TransportEvent, { _tag: "Receipt" }> =>
            e._tag === "Receipt" && e.receipt === "delivered"
        )
        expect(delivered.messageId).toBe("3EB0WHATISUP0001")
        const read = yield* next(
          "the read receipt",
          connection.events,
          (e): e is Extract<TransportEvent, { _tag: "Receipt" }> =>
            e._tag === "Receipt" && e.receipt === "read"
        )
        expect(read.messageId).toBe("3EB0WHATISUP0001")
        const received = sim.received("15557778888")
        expect(received.map((m) => m.id)).toContain("3EB0WHATISUP0001")
        expect(received.find((m) => m.id === "3EB0WHATISUP0001")?.message.extendedTextMessage?.text).toBe(
          "hi back"
        )

        // the lease may have lapsed: nothing more leaves the socket, and the connection closes; first a
        // quiet second, so that the acks Baileys sent for the receipts have reached the simulator
        yield* pause(1000)
        const lapsedAt = sim.now()
        leaseHeld = false
        const refused = yield* connection
          .send({ id: "3EB0WHATISUP0002", to: "15557778888@s.whatsapp.net", content: { text: "too late" } })
          .pipe(Effect.flip)
        expect(refused._tag).toBe("TransportError")
        yield* next(
          "the connection closes once its lease may have lapsed",
          connection.events,
          (e): e is Extract<TransportEvent, { _tag: "Close" }> => e._tag === "Close"
        )
        const [last] = sim.connectionHistory("15550001234").slice(-1)
        expect(last?.closedAt, "the simulator saw the socket close").toBeDefined()
        expect(last?.stanzas.filter((stanza) => stanza.at >= lapsedAt) ?? []).toEqual([])
        expect(sim.received("15557778888").map((m) => m.id)).not.toContain("3EB0WHATISUP0002")
      }).pipe(Effect.scoped),
    120_000
  )
})
