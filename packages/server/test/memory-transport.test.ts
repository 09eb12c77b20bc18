import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Option, Queue } from "effect"
import {
  type InboundMessage,
  TransportError,
  TransportEvent,
  WhatsAppTransport
} from "../src/channels/transport.ts"
import { describeInbound } from "../src/whatsapp/inboundContent.ts"
import { layerMemoryTransport, MemoryTransport } from "../src/whatsapp/memoryTransport.ts"
import { makeLoginStore, noMessages, testChannel } from "./support/baileys.ts"

const inbound = (whatsappId: string): InboundMessage => ({
  whatsappId,
  from: "+15550009002",
  chat: "+15550009002",
  timestamp: new Date(0),
  content: new Uint8Array(),
  type: "notify"
})

describe("the memory transport, for tests of what sits above the transport", () => {
  it.effect(
    "prepares real WhatsApp content, records sends and read marks, and answers sends as scripted",
    () =>
      Effect.gen(function* () {
        const services = yield* Layer.build(layerMemoryTransport())
        const transport = Context.get(services, WhatsAppTransport)
        const control = Context.get(services, MemoryTransport)
        const connection = yield* transport.connect({
          channelId: testChannel,
          pairing: { method: "qr" },
          authState: makeLoginStore().store,
          holdsLease: () => true,
          actor: {},
          ...noMessages
        })
        const content = yield* connection.prepare("+15550009002", {
          type: "location",
          latitude: 1,
          longitude: 2,
          name: "here"
        })
        expect(describeInbound(content).message).toEqual({
          type: "location",
          location: { latitude: 1, longitude: 2, name: "here" }
        })

        yield* connection.send({ id: "3EB0MEMORY01", to: "+15550009002", content })
        expect(control.sent(testChannel)).toEqual([{ id: "3EB0MEMORY01", to: "+15550009002", content }])
        const events = yield* Queue.takeAll(connection.events)
        expect(events).toContainEqual(TransportEvent.ServerAck({ messageId: "3EB0MEMORY01", error: null }))

        yield* control.answerSends(testChannel, ({ id }) => [
          TransportEvent.ServerAck({ messageId: id, error: null }),
          TransportEvent.Receipt({ messageId: id, receipt: "played" })
        ])
        yield* connection.send({ id: "3EB0MEMORY02", to: "+15550009002", content })
        expect(yield* Queue.takeAll(connection.events)).toEqual([
          TransportEvent.ServerAck({ messageId: "3EB0MEMORY02", error: null }),
          TransportEvent.Receipt({ messageId: "3EB0MEMORY02", receipt: "played" })
        ])
        yield* control.answerSends(
          testChannel,
          () => new TransportError({ reason: "offline", retryable: true })
        )
        const refused = yield* Effect.flip(
          connection.send({ id: "3EB0MEMORY03", to: "+15550009002", content })
        )
        expect(refused.reason).toBe("offline")

        yield* connection.markRead([{ id: "3EB0IN", fromMe: false, chat: "+15550009002" }])
        expect(control.reads(testChannel)).toEqual([{ id: "3EB0IN", fromMe: false, chat: "+15550009002" }])
      }).pipe(Effect.scoped)
  )

  it.effect(
    "delivers inbound messages through storeInbound, and closes (500) when they could not be stored",
    () =>
      Effect.gen(function* () {
        const services = yield* Layer.build(layerMemoryTransport())
        const transport = Context.get(services, WhatsAppTransport)
        const control = Context.get(services, MemoryTransport)
        const stored: Array<InboundMessage> = []
        let failing = false
        const connection = yield* transport.connect({
          channelId: testChannel,
          pairing: { method: "qr" },
          authState: makeLoginStore().store,
          holdsLease: () => true,
          actor: {},
          storeInbound: (messages) =>
            failing ? Effect.fail("database down") : Effect.sync(() => void stored.push(...messages)),
          sentContent: (id) => Effect.succeed(id === "3EB0KNOWN" ? new Uint8Array([1, 2]) : undefined)
        })
        yield* Queue.takeAll(connection.events)

        expect(yield* control.receive(testChannel, [inbound("3EB0A"), inbound("3EB0B")])).toBe(true)
        expect(stored.map((message) => message.whatsappId)).toEqual(["3EB0A", "3EB0B"])
        failing = true
        expect(yield* control.receive(testChannel, [inbound("3EB0C")])).toBe(false)
        expect(Option.getOrUndefined(yield* Queue.poll(connection.events))).toEqual(
          TransportEvent.Close({ code: 500, reason: "an inbound message could not be stored" })
        )

        expect(yield* control.retryReceipt(testChannel, "3EB0KNOWN")).toEqual(new Uint8Array([1, 2]))
        expect(yield* control.retryReceipt(testChannel, "3EB0OTHER")).toBeUndefined()
      }).pipe(Effect.scoped)
  )
})
