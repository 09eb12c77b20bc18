import { describe, expect, it } from "@effect/vitest"
import type { Message } from "@whatisup/domain"
import { type Simulator } from "@whatisup/wa-simulator"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { newCustomer } from "./support/admin.ts"
import type { ApiClient } from "./support/api.ts"
import { request } from "./support/http.ts"
import { baileysGateway, deliverTo, pairedChannel, trustMediaHost } from "./support/simulator.ts"
import { waitFor } from "./support/waits.ts"

const PHONE = "15551230001"
const CONTACT = "15557770001"

/** Files served over HTTP for media links, by path. */
const fileServer = (files: Record<string, { readonly type: string; readonly bytes: Uint8Array }>) =>
  Effect.acquireRelease(
    Effect.promise(
      () =>
        new Promise<{ url: string; server: http.Server }>((resolve) => {
          const server = http.createServer((req, res) => {
            const file = files[req.url ?? ""]
            if (file === undefined) {
              res.writeHead(404).end()
              return
            }
            res.writeHead(200, { "content-type": file.type, "content-length": file.bytes.length }).end(file.bytes)
          })
          server.listen(0, "127.0.0.1", () =>
            resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server })
          )
        })
    ),
    ({ server }) => Effect.promise(() => new Promise((resolve) => server.close(resolve)))
  ).pipe(Effect.map(({ url }) => url))

/** A gateway on real Baileys and the simulator, a customer whose plan does not pace the tests, and a paired channel. */
const connected = (extra: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const { sim, gateway, database } = yield* baileysGateway({
      WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32",
      LOG_LEVEL: "warn",
      ...extra
    }).pipe(Effect.tap(({ sim }) => trustMediaHost(sim)))
    const customer = yield* newCustomer(gateway, { plan: { messages_per_minute: 100_000 } })
    const channel = yield* pairedChannel(customer.client, sim, PHONE)
    return { sim, gateway, database, customer, client: customer.client, channel }
  })

const waitForMessage = (client: ApiClient, id: Message["id"], accept: (message: Message) => boolean, label: string) =>
  waitFor(label, client.messages.get({ params: { id } }), accept, { attempts: 600, everyMillis: 50 })

const phoneGot = (sim: Simulator, whatsappId: string) =>
  waitFor(
    `the phone decrypted ${whatsappId}`,
    Effect.sync(() => sim.received(CONTACT).find((message) => message.id === whatsappId)),
    (found) => found !== undefined,
    { attempts: 600, everyMillis: 50 }
  ).pipe(Effect.map((found) => found!))

describe("messages through the API, real Baileys and the simulator", () => {
  it.live(
    "every kind of message reaches the phone with its content, media bytes equal, and reaches read (played for a voice note)",
    () =>
      Effect.gen(function* () {
        const image = crypto.randomBytes(3000)
        const video = crypto.randomBytes(5000)
        const voice = crypto.randomBytes(2000)
        const pdf = crypto.randomBytes(4000)
        const sticker = crypto.randomBytes(1000)
        const files = yield* fileServer({
          "/cat.jpg": { type: "image/jpeg", bytes: image },
          "/clip.mp4": { type: "video/mp4", bytes: video },
          "/note.ogg": { type: "audio/ogg; codecs=opus", bytes: voice },
          "/invoice.pdf": { type: "application/pdf", bytes: pdf },
          "/smile.webp": { type: "image/webp", bytes: sticker }
        })
        const { sim, client, channel } = yield* connected()
        const send = (payload: Record<string, unknown>) =>
          client.messages.send({ params: { id: channel }, headers: {}, payload: { to: `+${CONTACT}`, ...payload } as never })

        const text = yield* send({ type: "text", text: { body: "hello from the gateway" } })
        const sent = [
          text,
          yield* send({ type: "image", image: { link: `${files}/cat.jpg`, caption: "a cat" } }),
          yield* send({ type: "video", video: { link: `${files}/clip.mp4` } }),
          yield* send({ type: "audio", audio: { link: `${files}/note.ogg`, voice: true } }),
          yield* send({ type: "document", document: { link: `${files}/invoice.pdf`, filename: "invoice.pdf" } }),
          yield* send({ type: "sticker", sticker: { link: `${files}/smile.webp` } }),
          yield* send({ type: "location", location: { latitude: 52.52, longitude: 13.405, name: "Berlin" } }),
          yield* send({ type: "reaction", reaction: { message_id: text.id, emoji: "👍" } }),
          yield* send({ type: "text", text: { body: "a reply" }, context: { message_id: text.id } })
        ]
        for (const message of sent) expect(message.status).toBe("queued")

        const got = []
        for (const message of sent) got.push((yield* phoneGot(sim, message.whatsapp_id)).message)
        const [gotText, gotImage, gotVideo, gotVoice, gotDocument, gotSticker, gotLocation, gotReaction, gotReply] = got
        expect(gotText!.extendedTextMessage?.text ?? gotText!.conversation).toBe("hello from the gateway")
        expect(gotImage!.imageMessage?.caption).toBe("a cat")
        expect(gotVideo!.videoMessage).toBeTruthy()
        expect(gotVoice!.audioMessage?.ptt).toBe(true)
        expect(gotDocument!.documentMessage?.fileName).toBe("invoice.pdf")
        expect(gotSticker!.stickerMessage).toBeTruthy()
        expect(gotLocation!.locationMessage).toMatchObject({ degreesLatitude: 52.52, degreesLongitude: 13.405, name: "Berlin" })
        expect(gotReaction!.reactionMessage).toMatchObject({ text: "👍", key: { id: text.whatsapp_id } })
        expect(gotReply!.extendedTextMessage?.contextInfo?.stanzaId).toBe(text.whatsapp_id)
        expect(sim.receivedMedia(CONTACT, sent[1]!.whatsapp_id)).toEqual(image)
        expect(sim.receivedMedia(CONTACT, sent[4]!.whatsapp_id)).toEqual(pdf)

        for (const message of sent) {
          const expected = message.type === "audio" ? "played" : "read"
          const done = yield* waitForMessage(client, message.id, (m) => m.status === expected, `${message.type} ${expected}`)
          const history = done.statuses.map((change) => change.status)
          expect(history[0]).toBe("queued")
          expect(history).toContain("sent")
          expect(history).toContain("delivered")
          expect(history.at(-1)).toBe(expected)
        }
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "200 messages to one number arrive in the order they were accepted, each once",
    () =>
      Effect.gen(function* () {
        const { sim, client, channel } = yield* connected()
        const sent: Array<Message> = []
        for (let i = 0; i < 200; i++) {
          sent.push(
            yield* client.messages.send({
              params: { id: channel },
              headers: {},
              payload: { to: `+${CONTACT}`, type: "text", text: { body: `number ${i}` } }
            })
          )
        }
        const ids = new Set(sent.map((message) => message.whatsapp_id))
        const arrived = yield* waitFor(
          "all 200 decrypted by the phone",
          Effect.sync(() => sim.received(CONTACT).filter((message) => ids.has(message.id))),
          (found) => found.length >= 200,
          { attempts: 1200, everyMillis: 50 }
        )
        expect(arrived.map((message) => message.id)).toEqual(sent.map((message) => message.whatsapp_id))
        expect(arrived.map((m) => m.message.extendedTextMessage?.text ?? m.message.conversation)).toEqual(
          sent.map((_, i) => `number ${i}`)
        )
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "an inbound message is stored once though WhatsApp delivers it twice, read back through the API, its media downloaded equal",
    () =>
      Effect.gen(function* () {
        const { sim, client, channel, customer, gateway } = yield* connected()
        const photo = crypto.randomBytes(2500)
        const first = yield* deliverTo(sim, PHONE, {
          from: CONTACT,
          copies: 2,
          media: { kind: "image", bytes: photo, mimetype: "image/jpeg", caption: "look" }
        })
        const text = yield* deliverTo(sim, PHONE, { from: CONTACT, copies: 2, message: { conversation: "hi gateway" } })
        const poll = yield* deliverTo(sim, PHONE, {
          from: CONTACT,
          message: { pollCreationMessage: { name: "lunch?", options: [{ optionName: "yes" }] } }
        })
        const inbound = yield* waitFor(
          "three inbound messages stored",
          client.messages.list({ params: { id: channel }, query: { direction: "inbound" } }),
          (page) => page.data.length >= 3,
          { attempts: 600, everyMillis: 50 }
        )
        const byWhatsAppId = new Map(inbound.data.map((message) => [message.whatsapp_id, message]))
        expect(inbound.data.filter((message) => message.whatsapp_id === first.id)).toHaveLength(1)
        expect(byWhatsAppId.get(first.id)).toMatchObject({ type: "image", from: `+${CONTACT}`, status: "received", image: { caption: "look", mime_type: "image/jpeg" } })
        expect(byWhatsAppId.get(text.id)).toMatchObject({ type: "text", text: { body: "hi gateway" } })
        expect(inbound.data.filter((message) => message.whatsapp_id === text.id)).toHaveLength(1)
        expect(byWhatsAppId.get(poll.id)).toMatchObject({ type: "unsupported", unsupported: { whatsapp_type: "pollCreationMessage" } })

        const media = yield* request(gateway.api, "GET", `/v1/messages/${byWhatsAppId.get(first.id)!.id}/media`, { key: customer.key })
        expect(media.status).toBe(200)
        expect(media.headers.get("content-type")).toBe("image/jpeg")
        const bytes = yield* Effect.promise(() =>
          fetch(`${gateway.api}/v1/messages/${byWhatsAppId.get(first.id)!.id}/media`, {
            headers: { authorization: `Bearer ${customer.key}` }
          }).then((r) => r.arrayBuffer())
        )
        expect(Buffer.from(bytes)).toEqual(photo)
        const noMedia = yield* request(gateway.api, "GET", `/v1/messages/${byWhatsAppId.get(text.id)!.id}/media`, { key: customer.key })
        expect(noMedia.status).toBe(409)

        const events = yield* client.events.list({ query: { channel_id: channel, type: "message.received" } })
        expect(events.data.filter((event) => event.data["whatsapp_id"] === first.id)).toHaveLength(1)

        // a read receipt goes back to the phone
        const read = yield* client.messages.read({ params: { id: byWhatsAppId.get(text.id)!.id } })
        expect(read.status).toBe("read")
        yield* waitFor(
          "the read receipt reached WhatsApp",
          Effect.sync(() => sim.receiptsFrom(PHONE).filter((receipt) => receipt.id === text.id).map((r) => r.type)),
          (types) => types.includes("read"),
          { attempts: 400, everyMillis: 50 }
        )
      }).pipe(Effect.scoped),
    180_000
  )
})
