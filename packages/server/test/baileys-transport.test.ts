import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { InboundMessage, TransportEvent } from "../src/channels/transport.ts"
import { describeInbound } from "../src/whatsapp/inboundContent.ts"
import {
  baileysTransport,
  makeLoginStore,
  nextEvent as next,
  noMessages,
  tagged,
  testChannel
} from "./support/baileys.ts"
import { pause, waitUntil } from "./support/waits.ts"
import { deliverTo, simulator } from "./support/simulator.ts"

describe("the Baileys transport against the simulator", () => {
  it.live(
    "a paired connection stores inbound messages, and what it sends is acked, delivered, read and decrypted by the phone",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        const transport = yield* baileysTransport(sim.url)
        const authState = makeLoginStore().store
        const channelId = testChannel
        let leaseHeld = true
        const holdsLease = () => leaseHeld
        // one actor, reconnecting
        const actor = {}
        const first = yield* transport.connect({
          channelId,
          pairing: { method: "qr" },
          authState,
          holdsLease,
          actor,
          ...noMessages
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
        const stored: Array<InboundMessage> = []
        const connection = yield* transport.connect({
          channelId,
          pairing: { method: "qr" },
          authState,
          holdsLease,
          actor,
          ...noMessages,
          storeInbound: (messages) => Effect.sync(() => void stored.push(...messages))
        })
        const open = yield* next(
          "the connection opens with no QR",
          connection.events,
          (e): e is Extract<TransportEvent, { _tag: "Open" }> => e._tag === "Open"
        )
        expect(open.phoneNumber).toBe("+15550001234")

        yield* deliverTo(sim, "15550001234", {
          from: "15557778888",
          message: { conversation: "hello gateway" }
        })
        yield* waitUntil(
          "the inbound message is stored",
          Effect.sync(() => stored.length > 0),
          { attempts: 400 }
        )
        expect(stored[0]?.from).toBe("+15557778888")
        expect(describeInbound(stored[0]!.content).message).toEqual({
          type: "text",
          text: { body: "hello gateway" }
        })

        sim.setReceipts("15557778888", {
          ack: { delayMs: 300 },
          delivered: { delayMs: 400 },
          read: { delayMs: 500 }
        })
        const hiBack = yield* connection.prepare("+15557778888", {
          type: "text",
          body: "hi back",
          previewUrl: false
        })
        yield* connection.send({ id: "3EB0WHATISUP0001", to: "+15557778888", content: hiBack })
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
          .send({ id: "3EB0WHATISUP0002", to: "+15557778888", content: hiBack })
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

  it.live(
    "the connection after a scan waits for the login writes still running, and logs in with what the scan gave rather than showing a new QR",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        const transport = yield* baileysTransport(sim.url)
        // from the scan on, each login write takes 3 s, as on a database slow to commit
        let slow = false
        const login = makeLoginStore({ delayMillis: () => (slow ? 3000 : 0) })
        const options = {
          channelId: testChannel,
          pairing: { method: "qr" as const },
          authState: login.store,
          holdsLease: () => true,
          actor: {},
          ...noMessages
        }
        const first = yield* transport.connect(options)
        const qr = yield* next("the QR", first.events, tagged("Qr"))
        slow = true
        yield* Effect.promise(() => sim.scan(qr.qr, { phoneNumber: "15550002345" }))
        const restart = yield* next("the 515 close after the scan", first.events, tagged("Close"))
        expect(restart.code).toBe(515)
        expect(
          login.writes.some((write) => write.finished === undefined),
          "the scan's credentials are still being written when the pairing connection ends"
        ).toBe(true)

        // at once, as the actor reconnects after a 515: it reads the login once the scan's is stored
        const pairingWrites = login.writes.length
        const second = yield* transport.connect(options)
        expect(
          login.writes.slice(0, pairingWrites).every((write) => write.finished !== undefined),
          "every login write of the pairing connection has ended when the next connection starts"
        ).toBe(true)
        slow = false
        const firstSeen = yield* next(
          "the new connection opens or shows a QR",
          second.events,
          (e): e is Extract<TransportEvent, { _tag: "Open" | "Qr" }> => e._tag === "Open" || e._tag === "Qr"
        )
        expect(firstSeen._tag, "the new connection logs in with no QR").toBe("Open")
        expect((firstSeen as Extract<TransportEvent, { _tag: "Open" }>).phoneNumber).toBe("+15550002345")
      }).pipe(Effect.scoped),
    60_000
  )
})
