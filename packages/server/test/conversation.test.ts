import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { newCustomer } from "./support/admin.ts"
import { baileysGateway, deliverTo, pairedChannel } from "./support/simulator.ts"
import { waitFor } from "./support/waits.ts"

const PHONE = "15551260001"
const CONTACT = "15557800001"

describe("a conversation going both ways at once", () => {
  it.live(
    "every message decrypts on the other side: the gateway's sends and its contact's messages never undo each other's Signal session",
    () =>
      Effect.gen(function* () {
        const { sim, gateway } = yield* baileysGateway({ LOG_LEVEL: "warn" })
        const { client } = yield* newCustomer(gateway, { plan: { messages_per_minute: 100_000 } })
        const channel = yield* pairedChannel(client, sim, PHONE)
        const send = (body: string) =>
          client.messages.send({
            params: { id: channel },
            headers: {},
            payload: { to: `+${CONTACT}`, type: "text", text: { body } }
          })
        const receive = (body: string) =>
          deliverTo(sim, PHONE, { from: CONTACT, message: { conversation: body } })
        const phoneDecrypted = (ids: ReadonlyArray<string>) =>
          waitFor(
            "the contact's phone decrypted every message the gateway sent",
            Effect.sync(() => {
              const got = new Set(sim.received(CONTACT).map((message) => message.id))
              return ids.filter((id) => !got.has(id))
            }),
            (missing) => missing.length === 0,
            { attempts: 600, everyMillis: 50 }
          )
        const gatewayStored = (bodies: ReadonlyArray<string>) =>
          waitFor(
            "the gateway stored every message the contact sent, as text",
            client.messages
              .list({ params: { id: channel }, query: { direction: "inbound", limit: 100 } })
              .pipe(
                Effect.map((page) => {
                  const got = new Set(page.data.map((message) => message.text?.body))
                  return bodies.filter((body) => !got.has(body))
                })
              ),
            (missing) => missing.length === 0,
            { attempts: 600, everyMillis: 50 }
          )

        // one exchange opens the session both ways
        const first = yield* send("hello")
        yield* phoneDecrypted([first.whatsapp_id])
        yield* receive("hi")
        yield* gatewayStored(["hi"])

        // then both sides write at once, again and again
        const rounds = 40
        const sent = yield* Effect.all(
          [
            Effect.forEach(
              Array.from({ length: rounds }, (_, i) => `from the gateway ${i}`),
              (body) => send(body),
              { concurrency: 4 }
            ),
            Effect.forEach(
              Array.from({ length: rounds }, (_, i) => `from the contact ${i}`),
              (body) => receive(body),
              { concurrency: 4 }
            )
          ],
          { concurrency: 2 }
        ).pipe(Effect.map(([sent]) => sent))
        yield* phoneDecrypted(sent.map((message) => message.whatsapp_id))
        yield* gatewayStored(Array.from({ length: rounds }, (_, i) => `from the contact ${i}`))
        const inbound = yield* client.messages.list({
          params: { id: channel },
          query: { direction: "inbound", limit: 100 }
        })
        expect(inbound.data.filter((message) => message.type !== "text")).toEqual([])
      }).pipe(Effect.scoped),
    240_000
  )
})
