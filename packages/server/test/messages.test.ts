import { describe, expect, it } from "@effect/vitest"
import type { ChannelId, Message } from "@whatisup/domain"
import { type Simulator } from "@whatisup/wa-simulator"
import { Deferred, Effect, Exit, Scope } from "effect"
import * as crypto from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { newCustomer } from "./support/admin.ts"
import { type ApiClient, apiClient, waitForStatus } from "./support/api.ts"
import { sqlFor, testDatabase } from "./support/database.ts"
import { gatewayEnvironment, startGateway } from "./support/gateway.ts"
import { request } from "./support/http.ts"
import { metricsText, valueIn } from "./support/metrics.ts"
import { baileysGateway, deliverTo, pairedChannel, simulator, trustMediaHost } from "./support/simulator.ts"
import { pause, waitFor, waitUntil } from "./support/waits.ts"

const PHONE = "15551230001"
const CONTACT = "15557770001"

/** An HTTP server on 127.0.0.1 for the scope, answering with `handler`; its URL. */
const localServer = (handler: http.RequestListener) =>
  Effect.acquireRelease(
    Effect.promise(
      () =>
        new Promise<http.Server>((resolve) => {
          const server = http.createServer(handler)
          server.listen(0, "127.0.0.1", () => resolve(server))
        })
    ),
    (server) =>
      Effect.promise(() => {
        server.closeAllConnections()
        return new Promise((resolve) => server.close(resolve))
      })
  ).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`))

/** Files served over HTTP for media links, by path. */
const fileServer = (files: Record<string, { readonly type: string; readonly bytes: Uint8Array }>) =>
  localServer((req, res) => {
    const file = files[req.url ?? ""]
    if (file === undefined) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { "content-type": file.type, "content-length": file.bytes.length }).end(file.bytes)
  })

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

const waitForMessage = (
  client: ApiClient,
  id: Message["id"],
  accept: (message: Message) => boolean,
  label: string
) => waitFor(label, client.messages.get({ params: { id } }), accept, { attempts: 600, everyMillis: 50 })

/** `count` texts to CONTACT, accepted one after another. */
const sendTexts = (client: ApiClient, channel: ChannelId, count: number, body: (i: number) => string) =>
  Effect.forEach(
    Array.from({ length: count }, (_, i) => i),
    (i) =>
      client.messages.send({
        params: { id: channel },
        headers: {},
        payload: { to: `+${CONTACT}`, type: "text", text: { body: body(i) } }
      })
  )

const phoneGot = (sim: Simulator, whatsappId: string) =>
  waitFor(
    `the phone decrypted ${whatsappId}`,
    Effect.sync(() => sim.received(CONTACT).find((message) => message.id === whatsappId)),
    (found) => found !== undefined,
    { attempts: 600, everyMillis: 50 }
  ).pipe(Effect.map((found) => found!))

/** The value of a Prometheus series in `text` whose labels include every one given; 0 when there is none. */
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
          client.messages.send({
            params: { id: channel },
            headers: {},
            payload: { to: `+${CONTACT}`, ...payload } as never
          })

        const text = yield* send({ type: "text", text: { body: "hello from the gateway" } })
        const sent = [
          text,
          yield* send({ type: "image", image: { link: `${files}/cat.jpg`, caption: "a cat" } }),
          yield* send({ type: "video", video: { link: `${files}/clip.mp4` } }),
          yield* send({ type: "audio", audio: { link: `${files}/note.ogg`, voice: true } }),
          yield* send({
            type: "document",
            document: { link: `${files}/invoice.pdf`, filename: "invoice.pdf", caption: "March" }
          }),
          yield* send({ type: "sticker", sticker: { link: `${files}/smile.webp` } }),
          yield* send({
            type: "location",
            location: { latitude: 52.52, longitude: 13.405, name: "Berlin", address: "Pariser Platz" }
          }),
          yield* send({ type: "reaction", reaction: { message_id: text.id, emoji: "👍" } }),
          yield* send({ type: "text", text: { body: "a reply" }, context: { message_id: text.id } }),
          yield* send({ type: "audio", audio: { link: `${files}/note.ogg` } }),
          yield* send({ type: "reaction", reaction: { message_id: text.id, emoji: "" } }),
          yield* send({ type: "text", text: { body: "see https://example.com", preview_url: true } })
        ]
        for (const message of sent) expect(message.status).toBe("queued")

        const got = []
        for (const message of sent) got.push((yield* phoneGot(sim, message.whatsapp_id)).message)
        const [
          gotText,
          gotImage,
          gotVideo,
          gotVoice,
          gotDocument,
          gotSticker,
          gotLocation,
          gotReaction,
          gotReply,
          gotAudio,
          gotUnreaction,
          gotPreview
        ] = got
        expect(gotText!.extendedTextMessage?.text ?? gotText!.conversation).toBe("hello from the gateway")
        expect(gotImage!.imageMessage?.caption).toBe("a cat")
        expect(gotVideo!.videoMessage).toBeTruthy()
        expect(gotVoice!.audioMessage).toMatchObject({ ptt: true, mimetype: "audio/ogg; codecs=opus" })
        expect(gotDocument!.documentMessage).toMatchObject({ fileName: "invoice.pdf", caption: "March" })
        expect(gotSticker!.stickerMessage).toBeTruthy()
        expect(gotLocation!.locationMessage).toMatchObject({
          degreesLatitude: 52.52,
          degreesLongitude: 13.405,
          name: "Berlin",
          address: "Pariser Platz"
        })
        expect(gotReaction!.reactionMessage).toMatchObject({ text: "👍", key: { id: text.whatsapp_id } })
        expect(gotReply!.extendedTextMessage?.contextInfo?.stanzaId).toBe(text.whatsapp_id)
        // an audio that is not a voice note, and a reaction taken back (an empty emoji)
        expect(gotAudio!.audioMessage?.ptt ?? false).toBe(false)
        expect(gotUnreaction!.reactionMessage).toMatchObject({ text: "", key: { id: text.whatsapp_id } })
        expect(gotPreview!.extendedTextMessage?.text ?? gotPreview!.conversation).toBe(
          "see https://example.com"
        )
        expect(gotSticker!.stickerMessage?.mimetype).toBe("image/webp")
        // every file as the phone decrypts it from WhatsApp's media host
        for (const [message, bytes] of [
          [sent[1]!, image],
          [sent[2]!, video],
          [sent[3]!, voice],
          [sent[4]!, pdf],
          [sent[5]!, sticker]
        ] as const) {
          expect(sim.receivedMedia(CONTACT, message.whatsapp_id), message.type).toEqual(bytes)
        }

        for (const message of sent) {
          const expected = message.type === "audio" && message.audio?.voice === true ? "played" : "read"
          const done = yield* waitForMessage(
            client,
            message.id,
            (m) => m.status === expected,
            `${message.type} ${expected}`
          )
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
        const sent = yield* sendTexts(client, channel, 200, (i) => `number ${i}`)
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
    "inbound messages of every kind are stored once though WhatsApp delivers each twice, read back through the API, their media downloaded equal; a kind the gateway does not read is unsupported",
    () =>
      Effect.gen(function* () {
        const { sim, client, channel, customer, gateway } = yield* connected()
        const files = {
          image: { bytes: crypto.randomBytes(2500), mimetype: "image/jpeg", caption: "look" },
          video: { bytes: crypto.randomBytes(4000), mimetype: "video/mp4" },
          audio: { bytes: crypto.randomBytes(1500), mimetype: "audio/ogg; codecs=opus", ptt: true },
          document: { bytes: crypto.randomBytes(3000), mimetype: "application/pdf", fileName: "report.pdf" },
          sticker: { bytes: crypto.randomBytes(800), mimetype: "image/webp" }
        } as const
        // every kind, each delivered twice by WhatsApp
        const twice = (delivery: Omit<Parameters<typeof deliverTo>[2], "from" | "copies">) =>
          deliverTo(sim, PHONE, { from: CONTACT, copies: 2, ...delivery })
        const text = yield* twice({ message: { conversation: "hi gateway" } })
        const media = {
          image: yield* twice({ media: { kind: "image", ...files.image } }),
          video: yield* twice({ media: { kind: "video", ...files.video } }),
          audio: yield* twice({ media: { kind: "audio", ...files.audio } }),
          document: yield* twice({ media: { kind: "document", ...files.document } }),
          sticker: yield* twice({ media: { kind: "sticker", ...files.sticker } })
        }
        const location = yield* twice({
          message: { locationMessage: { degreesLatitude: 48.85, degreesLongitude: 2.35, name: "Paris" } }
        })
        const reply = yield* twice({
          message: {
            extendedTextMessage: {
              text: "as I said",
              contextInfo: { stanzaId: text.id, participant: `${CONTACT}@s.whatsapp.net` }
            }
          }
        })
        const reaction = yield* twice({
          message: {
            reactionMessage: {
              key: { remoteJid: `${PHONE}@s.whatsapp.net`, fromMe: false, id: text.id },
              text: "❤️"
            }
          }
        })
        const poll = yield* twice({
          message: { pollCreationMessage: { name: "lunch?", options: [{ optionName: "yes" }] } }
        })
        const all = [text, ...Object.values(media), location, reply, reaction, poll]
        const inbound = yield* waitFor(
          "every inbound message stored",
          client.messages.list({ params: { id: channel }, query: { direction: "inbound", limit: 100 } }),
          (page) => all.every((sent) => page.data.some((message) => message.whatsapp_id === sent.id)),
          { attempts: 600, everyMillis: 50 }
        )
        // what WhatsApp delivered twice is stored once
        yield* waitFor(
          "WhatsApp holds nothing unacknowledged",
          Effect.sync(() => sim.pending(PHONE)),
          (pending) => pending.length === 0,
          {
            attempts: 600,
            everyMillis: 50
          }
        )
        const listed = yield* client.messages.list({
          params: { id: channel },
          query: { direction: "inbound", limit: 100 }
        })
        expect(listed.data.length).toBe(all.length)
        expect(inbound.data.length).toBe(all.length)
        // listed by their sender, and by no other
        const fromContact = yield* client.messages.list({
          params: { id: channel },
          query: { from: `+${CONTACT}`, limit: 100 }
        })
        expect(new Set(fromContact.data.map((message) => message.id))).toEqual(
          new Set(listed.data.map((message) => message.id))
        )
        const fromSomeoneElse = yield* client.messages.list({
          params: { id: channel },
          query: { from: "+15550009999", limit: 100 }
        })
        expect(fromSomeoneElse.data).toEqual([])
        const byWhatsAppId = new Map(listed.data.map((message) => [message.whatsapp_id, message]))
        const stored = (id: string) => byWhatsAppId.get(id)!
        expect(stored(text.id)).toMatchObject({
          type: "text",
          from: `+${CONTACT}`,
          status: "received",
          text: { body: "hi gateway" }
        })
        expect(stored(media.image.id)).toMatchObject({
          type: "image",
          image: { caption: "look", mime_type: "image/jpeg" }
        })
        expect(stored(media.audio.id)).toMatchObject({ type: "audio", audio: { voice: true } })
        expect(stored(media.document.id)).toMatchObject({
          type: "document",
          document: { filename: "report.pdf" }
        })
        expect(stored(location.id)).toMatchObject({
          type: "location",
          location: { latitude: 48.85, longitude: 2.35, name: "Paris" }
        })
        expect(stored(reply.id)).toMatchObject({
          type: "text",
          text: { body: "as I said" },
          context: { message_id: stored(text.id).id, whatsapp_id: text.id }
        })
        expect(stored(reaction.id)).toMatchObject({
          type: "reaction",
          reaction: { message_id: stored(text.id).id, emoji: "❤️" }
        })
        expect(stored(poll.id)).toMatchObject({
          type: "unsupported",
          unsupported: { whatsapp_type: "pollCreationMessage" }
        })

        for (const [kind, sent] of Object.entries(media)) {
          const id = stored(sent.id).id
          const response = yield* Effect.promise(() =>
            fetch(`${gateway.api}/v1/messages/${id}/media`, {
              headers: { authorization: `Bearer ${customer.key}` }
            })
          )
          expect(response.status, kind).toBe(200)
          expect(response.headers.get("content-type"), kind).toBe(files[kind as keyof typeof files].mimetype)
          const bytes = Buffer.from(yield* Effect.promise(() => response.arrayBuffer()))
          expect(bytes.equals(Buffer.from(files[kind as keyof typeof files].bytes)), kind).toBe(true)
        }
        const documentResponse = yield* request(
          gateway.api,
          "GET",
          `/v1/messages/${stored(media.document.id).id}/media`,
          { key: customer.key }
        )
        expect(documentResponse.headers.get("content-disposition")).toContain('filename="report.pdf"')
        const noMedia = yield* request(gateway.api, "GET", `/v1/messages/${stored(text.id).id}/media`, {
          key: customer.key
        })
        expect(noMedia.status).toBe(409)
        expect(noMedia.body.code).toBe("invalid_state")
        const first = media.image

        const events = yield* client.events.list({ query: { channel_id: channel, type: "message.received" } })
        expect(events.data.filter((event) => event.data["whatsapp_id"] === first.id)).toHaveLength(1)

        // a read receipt goes back to the phone
        const read = yield* client.messages.read({ params: { id: stored(text.id).id } })
        expect(read.status).toBe("read")
        yield* waitFor(
          "the read receipt reached WhatsApp",
          Effect.sync(() =>
            sim
              .receiptsFrom(PHONE)
              .filter((receipt) => receipt.id === text.id)
              .map((r) => r.type)
          ),
          (types) => types.includes("read"),
          { attempts: 400, everyMillis: 50 }
        )
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "a recipient's retry receipt after the gateway restarted is answered from the outbox: the same message, sent again",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        yield* trustMediaHost(sim)
        const database = yield* testDatabase
        const env = {
          WHATISUP_WA_WS_URL: sim.url,
          WHATISUP_WA_MEDIA_HOST: sim.mediaHost,
          WHATISUP_MASTER_KEYS: `k1:${crypto.randomBytes(32).toString("base64")}`,
          WHATISUP_NODE_ID: "retry-node",
          LOG_LEVEL: "warn"
        }
        const firstScope = yield* Scope.make()
        const first = yield* startGateway(yield* gatewayEnvironment(database.url, env), {
          whatsapp: "baileys"
        }).pipe(Scope.provide(firstScope))
        const { client, key } = yield* newCustomer(first, { plan: { messages_per_minute: 100_000 } })
        const channel = yield* pairedChannel(client, sim, PHONE)
        const sent = yield* client.messages.send({
          params: { id: channel },
          headers: {},
          payload: { to: `+${CONTACT}`, type: "text", text: { body: "ask me again" } }
        })
        yield* phoneGot(sim, sent.whatsapp_id)
        yield* Scope.close(firstScope, Exit.void)

        const second = yield* startGateway(yield* gatewayEnvironment(database.url, env), {
          whatsapp: "baileys"
        })
        const again = yield* apiClient(second.api, key)
        yield* waitForStatus(again, channel, "connected", { attempts: 400 })
        sim.sendRetryReceipt(CONTACT, sent.whatsapp_id)
        // Baileys acks the retry receipt after it stored the session the resend advanced: the phone
        // may have decrypted the resend (answered) a moment before the ack arrives (acked)
        const answered = yield* waitFor(
          "the retry receipt answered and acknowledged",
          Effect.sync(() => sim.retryRequests(CONTACT).find((request) => request.id === sent.whatsapp_id)),
          (request) => request?.answered === true && request.acked,
          { attempts: 600, everyMillis: 50 }
        )
        expect(answered?.acked).toBe(true)
        const copies = sim.received(CONTACT).filter((message) => message.id === sent.whatsapp_id)
        expect(copies.map((copy) => copy.resend)).toEqual([false, true])
        expect(copies[1]!.message.extendedTextMessage?.text ?? copies[1]!.message.conversation).toBe(
          "ask me again"
        )
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "while the channel cannot connect, messages wait and then drain; one older than WHATISUP_MESSAGE_MAX_AGE fails expired instead, unless a claim may have sent it",
    () =>
      Effect.gen(function* () {
        const { sim, client, channel, database } = yield* connected({ WHATISUP_MESSAGE_MAX_AGE: "8s" })
        const cannotConnect = Effect.gen(function* () {
          sim.setLoginFault({ kind: "failure", reason: 503 })
          expect(sim.inject(PHONE, { kind: "drop" })).toBe(1)
          yield* waitForStatus(client, channel, "reconnecting", { attempts: 400 })
        })
        // reconnects at once, as a user's restart does, rather than at the backoff's next try (up to 19 s
        // away after a few failures): the test's clock is the messages' age, not the backoff
        const canConnect = Effect.gen(function* () {
          sim.setLoginFault(undefined)
          yield* client.channels.restart({ params: { id: channel } })
          yield* waitForStatus(client, channel, "connected", { attempts: 600 })
        })
        yield* cannotConnect
        const send = (body: string) =>
          client.messages.send({
            params: { id: channel },
            headers: {},
            payload: { to: `+${CONTACT}`, type: "text", text: { body } }
          })
        const old = yield* send("too old by then")
        // the fresh one has 7 s left once the phone can log in again
        yield* pause(7500)
        const fresh = yield* send("still fresh")
        expect((yield* client.messages.get({ params: { id: old.id } })).status).toBe("queued")
        yield* pause(1000)
        yield* canConnect
        yield* waitForMessage(client, fresh.id, (m) => m.status === "read", "the fresh message read")
        const expired = yield* waitForMessage(
          client,
          old.id,
          (m) => m.status === "failed",
          "the old message failed"
        )
        expect(expired.failure?.reason).toBe("expired")
        expect(sim.received(CONTACT).some((message) => message.id === old.whatsapp_id)).toBe(false)

        // a message an earlier claim may have sent is not failed as expired, which could be untrue
        yield* cannotConnect
        const claimed = yield* send("claimed by a drain that died")
        const unclaimed = yield* send("never claimed")
        // as a drain killed between its claim and its send leaves it: claimed under no connection
        const sql = yield* sqlFor(database.url)
        yield* sql`UPDATE messages SET claim_token = 0 WHERE id = ${claimed.id}`
        // the periodic sweep, while nobody drains the channel
        yield* waitForMessage(client, unclaimed.id, (m) => m.status === "failed", "the unclaimed one expired")
        expect((yield* client.messages.get({ params: { id: claimed.id } })).status).toBe("queued")
        yield* canConnect
        // sent again under its WhatsApp id: the recipient has it once whatever the first claim did
        yield* waitForMessage(client, claimed.id, (m) => m.status === "read", "the claimed message read")
        expect(sim.received(CONTACT).filter((message) => message.id === claimed.whatsapp_id)).toHaveLength(1)

        const failedEvents = yield* client.events.list({
          query: { channel_id: channel, type: "message.failed" }
        })
        expect(failedEvents.data.map((event) => event.data["message_id"]).sort()).toEqual(
          [old.id, unclaimed.id].sort()
        )
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "a media link that fails or points at a 2 GB file fails its message with a reason, and the queue goes on",
    () =>
      Effect.gen(function* () {
        const huge = yield* localServer((req, res) => {
          if (req.url === "/huge.mp4") {
            // announces 2 GB and starts sending; the gateway must not read it
            res.writeHead(200, { "content-type": "video/mp4", "content-length": 2 * 1024 ** 3 })
            res.write(Buffer.alloc(64 * 1024))
            return
          }
          if (req.url === "/unannounced.jpg") {
            // no length announced: the gateway stops reading past the image limit
            res.writeHead(200, { "content-type": "image/jpeg" })
            const chunk = Buffer.alloc(1024 * 1024)
            let sentBytes = 0
            const more = () => {
              while (sentBytes < 64 * 1024 * 1024 && res.write(chunk)) sentBytes += chunk.length
              if (sentBytes < 64 * 1024 * 1024) res.once("drain", more)
              else res.end()
            }
            res.on("close", () => res.removeAllListeners("drain"))
            more()
            return
          }
          res.writeHead(404).end()
        })
        const { sim, client, channel } = yield* connected()
        const send = (payload: Record<string, unknown>) =>
          client.messages.send({
            params: { id: channel },
            headers: {},
            payload: { to: `+${CONTACT}`, ...payload } as never
          })
        const tooBig = yield* send({ type: "video", video: { link: `${huge}/huge.mp4` } })
        const endless = yield* send({ type: "image", image: { link: `${huge}/unannounced.jpg` } })
        const missing = yield* send({ type: "document", document: { link: `${huge}/nothing.pdf` } })
        const after = yield* send({ type: "text", text: { body: "after the failures" } })
        const failed = (id: Message["id"]) =>
          waitForMessage(client, id, (m) => m.status === "failed", `${id} failed`)
        expect((yield* failed(tooBig.id)).failure?.reason).toBe("media_too_large")
        expect((yield* failed(endless.id)).failure?.reason).toBe("media_too_large")
        const notFound = yield* failed(missing.id)
        expect(notFound.failure).toMatchObject({ reason: "media_fetch_refused" })
        expect(notFound.failure?.detail).toContain("404")
        yield* waitForMessage(client, after.id, (m) => m.status === "read", "the text after them read")
        for (const message of [tooBig, endless, missing]) {
          expect(sim.received(CONTACT).some((m) => m.id === message.whatsapp_id)).toBe(false)
        }
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "a channel sends at its plan's pace: a burst of a twelfth of messages_per_minute, then one every 60/messages_per_minute seconds",
    () =>
      Effect.gen(function* () {
        const { sim, gateway, database } = yield* baileysGateway({ LOG_LEVEL: "warn" })
        const { client } = yield* newCustomer(gateway, { plan: { messages_per_minute: 60 } })
        const channel = yield* pairedChannel(client, sim, PHONE)
        const sent = yield* sendTexts(client, channel, 9, (i) => `paced ${i}`)
        const ids = new Set(sent.map((message) => message.whatsapp_id))
        const arrived = () => sim.received(CONTACT).filter((message) => ids.has(message.id)).length
        // the burst: 60 a minute allows 5 at once
        yield* waitFor("the burst arrived", Effect.sync(arrived), (n) => n >= 5, {
          attempts: 600,
          everyMillis: 20
        })
        const afterBurst = Date.now()
        yield* waitFor("all nine arrived", Effect.sync(arrived), (n) => n === 9, {
          attempts: 600,
          everyMillis: 50
        })
        // the four after the burst took a second each, at least (a slow machine only makes it longer)
        expect(Date.now() - afterBurst).toBeGreaterThanOrEqual(3000)
        const sql = yield* sqlFor(database.url)
        const times = yield* waitFor(
          "nine sent",
          sql<{ at: Date }>`
            SELECT s.at FROM message_statuses s JOIN messages m ON m.id = s.message_id
            WHERE m.channel_id = ${channel} AND s.status = 'sent' ORDER BY s.at`.pipe(Effect.orDie),
          (rows) => rows.length === 9,
          { attempts: 200, everyMillis: 50 }
        )
        const spread = times[8]!.at.getTime() - times[0]!.at.getTime()
        expect(spread).toBeGreaterThanOrEqual(3000)
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "/metrics shows the outbox, the send latency, the acks and receipts applied and the inbound messages by type",
    () =>
      Effect.gen(function* () {
        const { sim, gateway, client, channel } = yield* connected()
        const text0 = yield* metricsText(gateway)
        const before = {
          ackApplied: valueIn(text0, "message_reports_total", 'kind="ack"', 'outcome="applied"'),
          receiptsApplied: valueIn(text0, "message_reports_total", 'kind="receipt"', 'outcome="applied"'),
          receiptsIgnored: valueIn(text0, "message_reports_total", 'kind="receipt"', 'outcome="ignored"'),
          textsReceived: valueIn(text0, "messages_received_total", 'type="text"'),
          latencies: valueIn(text0, "message_send_latency_seconds_count")
        }
        // the delivery receipt a moment after the server's ack: when it comes first, it stands for sent
        // and the ack moves nothing (counted as ignored)
        sim.setReceipts(CONTACT, { delivered: { delayMs: 300 } })
        const sent = yield* client.messages.send({
          params: { id: channel },
          headers: {},
          payload: { to: `+${CONTACT}`, type: "text", text: { body: "measured" } }
        })
        yield* waitForMessage(client, sent.id, (m) => m.status === "read", "read")
        sim.setReceipts(CONTACT, undefined)
        // a late receipt changes nothing: counted as ignored
        sim.sendReceipt(CONTACT, sent.whatsapp_id, "delivery")
        yield* deliverTo(sim, PHONE, { from: CONTACT, message: { conversation: "counted" } })
        // delivered, read and the late delivery: each counted once, applied or ignored (a delivery
        // that came in one batch after the read is ignored, as the late one is); the counters are the
        // process's, and other tests' gateways may have run in it: what this one added is compared
        const moved = (text: string) => ({
          ackApplied:
            valueIn(text, "message_reports_total", 'kind="ack"', 'outcome="applied"') - before.ackApplied,
          receiptsApplied:
            valueIn(text, "message_reports_total", 'kind="receipt"', 'outcome="applied"') -
            before.receiptsApplied,
          receiptsIgnored:
            valueIn(text, "message_reports_total", 'kind="receipt"', 'outcome="ignored"') -
            before.receiptsIgnored,
          textsReceived: valueIn(text, "messages_received_total", 'type="text"') - before.textsReceived,
          latencies: valueIn(text, "message_send_latency_seconds_count") - before.latencies
        })
        const metrics = yield* waitFor(
          "the metrics moved",
          Effect.map(metricsText(gateway), moved),
          (seen) => seen.textsReceived >= 1 && seen.receiptsApplied + seen.receiptsIgnored >= 3,
          { attempts: 400, everyMillis: 100 }
        )
        expect(metrics.latencies).toBe(1)
        expect(metrics.ackApplied).toBe(1)
        expect(metrics.receiptsApplied + metrics.receiptsIgnored).toBe(3)
        expect(metrics.receiptsApplied).toBeGreaterThanOrEqual(1)
        expect(metrics.receiptsIgnored).toBeGreaterThanOrEqual(1)

        // the outbox's depth: three messages waiting while the channel cannot connect, then none
        sim.setLoginFault({ kind: "failure", reason: 503 })
        expect(sim.inject(PHONE, { kind: "drop" })).toBe(1)
        yield* waitForStatus(client, channel, "reconnecting", { attempts: 400 })
        const waiting = yield* sendTexts(client, channel, 3, (i) => `waiting ${i}`)
        const outboxIs = (n: number) => (text: string) =>
          new RegExp(`messages_outbox\\{[^}]*state="waiting"[^}]*\\} ${n}\\n`).test(text)
        // the gauge is read from the database every 10 s
        yield* waitFor("the outbox shows three waiting", metricsText(gateway), outboxIs(3), {
          attempts: 300,
          everyMillis: 100
        })
        sim.setLoginFault(undefined)
        for (const message of waiting) {
          yield* waitForMessage(client, message.id, (m) => m.status === "read", "a waiting message read")
        }
        yield* waitFor("the outbox shows none waiting", metricsText(gateway), outboxIs(0), {
          attempts: 300,
          everyMillis: 100
        })
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "each status is posted once as its event, in order; a late, repeated or out-of-order receipt never moves a status back",
    () =>
      Effect.gen(function* () {
        const { sim, client, channel } = yield* connected()
        const send = (body: string) =>
          client.messages.send({
            params: { id: channel },
            headers: {},
            payload: { to: `+${CONTACT}`, type: "text", text: { body } }
          })
        const eventsOf = (id: Message["id"]) =>
          Effect.map(client.events.list({ query: { channel_id: channel, limit: 100 } }), (page) =>
            page.data
              .filter((event) => event.data["message_id"] === id)
              .sort((a, b) => Number(a.data["sequence"] ?? 0) - Number(b.data["sequence"] ?? 0))
              .map((event) => ({ type: event.type, status: event.data["status"] }))
          )

        // as it usually goes: sent, delivered, read, each once
        const usual = yield* send("as usual")
        yield* waitForMessage(client, usual.id, (m) => m.status === "read", "the usual message read")
        const usualEvents = yield* waitFor(
          "its three events",
          eventsOf(usual.id),
          (events) => events.length >= 3,
          { attempts: 200, everyMillis: 50 }
        )
        expect(usualEvents.map((event) => event.type)).toEqual([
          "message.sent",
          "message.delivered",
          "message.read"
        ])

        // the phone sends no receipt of its own: the test sends them, out of order and twice
        sim.setReceipts(CONTACT, { delivered: "drop" })
        const odd = yield* send("receipts out of order")
        yield* waitForMessage(client, odd.id, (m) => m.status === "sent", "the odd message sent")
        yield* phoneGot(sim, odd.whatsapp_id)
        sim.sendReceipt(CONTACT, odd.whatsapp_id, "read")
        yield* waitForMessage(client, odd.id, (m) => m.status === "read", "read by the read receipt")
        // the delivery receipt arrives late, and the read one again: both acknowledged, neither applied
        sim.sendReceipt(CONTACT, odd.whatsapp_id, "delivery")
        sim.sendReceipt(CONTACT, odd.whatsapp_id, "read")
        yield* waitUntil(
          "the late receipts acknowledged by the gateway",
          Effect.sync(() => sim.pendingReceipts(PHONE).every((receipt) => receipt.id !== odd.whatsapp_id)),
          { attempts: 400, everyMillis: 50 }
        )
        // a later message's events come after anything the late receipts could have made
        sim.setReceipts(CONTACT, undefined)
        const later = yield* send("after the late receipts")
        yield* waitForMessage(client, later.id, (m) => m.status === "read", "the later message read")
        const read = yield* client.messages.get({ params: { id: odd.id } })
        expect(read.status).toBe("read")
        // a read receipt stands for the delivery it implies: each step once, in order, none after
        expect(read.statuses.map((change) => change.status)).toEqual(["queued", "sent", "delivered", "read"])
        expect((yield* eventsOf(odd.id)).map((event) => event.type)).toEqual([
          "message.sent",
          "message.delivered",
          "message.read"
        ])

        // WhatsApp's server refuses a message (an error ack): failed, with the code, posted once
        sim.setReceipts(CONTACT, { ackError: 479 })
        const refused = yield* send("refused by the server")
        const failed = yield* waitForMessage(client, refused.id, (m) => m.status === "failed", "refused")
        expect(failed.failure).toMatchObject({ reason: "whatsapp_error" })
        expect(failed.failure?.detail).toContain("479")
        expect(failed.statuses.map((change) => change.status)).toEqual(["queued", "failed"])
        yield* waitFor("its event", eventsOf(refused.id), (events) => events.length >= 1, {
          attempts: 200,
          everyMillis: 50
        })
        expect((yield* eventsOf(refused.id)).map((event) => event.type)).toEqual(["message.failed"])
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "a moment when the database fails the outbox's work does not stop it: later messages are sent, and a receipt it could not apply is applied",
    () =>
      Effect.gen(function* () {
        const { sim, client, channel, gateway } = yield* connected()
        const owner = yield* sqlFor(gateway.databaseUrl)
        const send = (body: string) =>
          client.messages.send({
            params: { id: channel },
            headers: {},
            payload: { to: `+${CONTACT}`, type: "text", text: { body } }
          })
        // the phone reads a while after delivery: the read receipt comes while the table is away
        sim.setReceipts(CONTACT, { read: { delayMs: 3000 } })
        const before = yield* send("before the failure")
        yield* waitForMessage(
          client,
          before.id,
          (m) => m.status === "delivered",
          "delivered before the failure"
        )
        yield* owner`ALTER TABLE messages RENAME TO messages_away`
        // meanwhile the drain claims (at least every 2 s) and the read receipt comes: both fail
        yield* pause(5000)
        yield* owner`ALTER TABLE messages_away RENAME TO messages`
        sim.setReceipts(CONTACT, undefined)

        const after = yield* send("after the failure")
        yield* waitForMessage(
          client,
          after.id,
          (m) => m.status === "read",
          "the message after the failure read"
        )
        yield* waitForMessage(
          client,
          before.id,
          (m) => m.status === "read",
          "the receipt that failed applied"
        )
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "a message that grows older than WHATISUP_MESSAGE_MAX_AGE while its media is fetched is either sent or failed expired, never both",
    () =>
      Effect.gen(function* () {
        const asked = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const image = crypto.randomBytes(2000)
        const slow = yield* localServer((_req, res) => {
          Deferred.doneUnsafe(asked, Exit.void)
          Effect.runPromise(Deferred.await(release)).then(() =>
            res.writeHead(200, { "content-type": "image/jpeg", "content-length": image.length }).end(image)
          )
        })
        const { sim, client, channel } = yield* connected({ WHATISUP_MESSAGE_MAX_AGE: "2s" })
        const held = yield* client.messages.send({
          params: { id: channel },
          headers: {},
          payload: { to: `+${CONTACT}`, type: "image", image: { link: `${slow}/held.jpg` } }
        })
        yield* Deferred.await(asked)
        // long enough for the expiry sweep (every 10 s) to find it past its age while the drain holds it
        yield* pause(13_000)
        yield* Deferred.succeed(release, undefined)
        // a message queued after it is taken once the drain is done with it
        const next = yield* client.messages.send({
          params: { id: channel },
          headers: {},
          payload: { to: `+${CONTACT}`, type: "text", text: { body: "next" } }
        })
        yield* waitForMessage(
          client,
          next.id,
          (m) => m.status !== "queued",
          "the drain past the held message"
        )
        yield* Effect.promise(() => sim.settled())
        const final = yield* client.messages.get({ params: { id: held.id } })
        const atPhone = sim.received(CONTACT).some((message) => message.id === held.whatsapp_id)
        expect({ status: final.status, atPhone }).toEqual(
          final.status === "failed"
            ? { status: "failed", atPhone: false }
            : { status: final.status, atPhone: true }
        )
        expect(final.failure?.reason ?? "expired").toBe("expired")
      }).pipe(Effect.scoped),
    180_000
  )
})
