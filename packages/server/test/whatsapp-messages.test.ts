import { describe, expect, it } from "@effect/vitest"
import type { Simulator } from "@whatisup/wa-simulator"
import { proto } from "@whiskeysockets/baileys"
import { Deferred, Effect, Exit, Queue, Scope, Stream } from "effect"
import { randomBytes } from "node:crypto"
import type {
  ConnectOptions,
  InboundMessage,
  MessageReceipt,
  OutboundContent,
  TransportConnection
} from "../src/channels/transport.ts"
import { describeInbound } from "../src/whatsapp/inboundContent.ts"
import { downloadMedia } from "../src/whatsapp/media.ts"
import {
  baileysTransport,
  makeLoginStore,
  nextEvent,
  noMessages,
  tagged,
  testChannel
} from "./support/baileys.ts"
import { deliverTo, simulator, trustMediaHost } from "./support/simulator.ts"
import { staysTrue, waitFor, waitUntil } from "./support/waits.ts"

const PHONE = "15550007001"
const CONTACT = "15550007002"

type MessageOptions = Pick<ConnectOptions, "storeInbound" | "storeReceipts" | "sentContent">

/**
 * A channel paired with the simulator's phone, and a way to open its connections: each in a scope
 * of its own (closing it closes the socket), logged in before it is handed over.
 */
const pairedChannel = (sim: Simulator) =>
  Effect.gen(function* () {
    const transport = yield* baileysTransport(sim.url)
    const login = makeLoginStore()
    const actor = {}
    const connect = (options: MessageOptions) =>
      transport.connect({
        channelId: testChannel,
        pairing: { method: "qr" },
        authState: login.store,
        holdsLease: () => true,
        actor,
        ...options
      })
    const first = yield* connect(noMessages)
    const qr = yield* nextEvent("the QR", first.events, tagged("Qr"))
    yield* Effect.promise(() => sim.scan(qr.qr, { phoneNumber: PHONE }))
    yield* nextEvent("the 515 close after the scan", first.events, tagged("Close"))
    const open = (options: MessageOptions = noMessages) =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
        const connection = yield* connect(options).pipe(Scope.provide(scope))
        yield* nextEvent("the connection opens", connection.events, tagged("Open"))
        return { connection, close: Scope.close(scope, Exit.void) }
      })
    return { open, login }
  })

/** Whatever a storeInbound was handed, in order. */
const storedInto = (stored: Array<InboundMessage>): MessageOptions => ({
  ...noMessages,
  storeInbound: (messages) => Effect.sync(() => void stored.push(...messages))
})

/** Whether the linked devices of PHONE told WhatsApp anything of this message: a receipt or an ack. */
const acknowledged = (sim: Simulator, id: string) =>
  sim
    .connectionHistory(PHONE)
    .some((connection) =>
      connection.stanzas.some(
        (stanza) => (stanza.tag === "receipt" || stanza.tag === "ack") && stanza.attrs.id === id
      )
    )

/** Prepares and sends a message to CONTACT, and waits for the phone to have decrypted it. */
const sendToContact = (
  sim: Simulator,
  connection: TransportConnection,
  id: string,
  content: OutboundContent
) =>
  Effect.gen(function* () {
    const prepared = yield* connection.prepare(`+${CONTACT}`, content)
    yield* connection.send({ id, to: `+${CONTACT}`, content: prepared })
    const received = yield* waitFor(
      `the phone decrypted ${id}`,
      Effect.sync(() => sim.received(CONTACT).find((message) => message.id === id)),
      (found) => found !== undefined,
      { attempts: 400 }
    )
    return { prepared, message: received!.message }
  })

describe("WhatsApp messages through the Baileys transport and the simulator", () => {
  it.live(
    "an inbound message is acknowledged to WhatsApp only once it is stored",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        const { open } = yield* pairedChannel(sim)
        const release = yield* Deferred.make<void>()
        const handed: Array<InboundMessage> = []
        yield* open({
          ...noMessages,
          storeInbound: (messages) =>
            Effect.andThen(
              Effect.sync(() => void handed.push(...messages)),
              Deferred.await(release)
            )
        })
        const { id } = yield* deliverTo(sim, PHONE, { from: CONTACT, message: { conversation: "hold on" } })
        yield* waitUntil(
          "the message is handed over to be stored",
          Effect.sync(() => handed.some((message) => message.whatsappId === id)),
          { attempts: 400 }
        )
        yield* staysTrue(
          "while it is being stored, WhatsApp has no receipt and no ack for it",
          Effect.sync(() => !acknowledged(sim, id) && sim.pending(PHONE).some((each) => each.id === id)),
          { forMillis: 1000 }
        )

        yield* Deferred.succeed(release, undefined)
        yield* waitUntil(
          "once stored, the receipt arrives and the message is no longer pending",
          Effect.sync(() => acknowledged(sim, id) && sim.pending(PHONE).length === 0),
          { attempts: 400 }
        )
        expect(sim.receiptsFrom(PHONE).filter((receipt) => receipt.id === id)).toHaveLength(1)
        const [message] = handed
        expect(message).toMatchObject({
          whatsappId: id,
          from: `+${CONTACT}`,
          chat: `+${CONTACT}`,
          type: "notify"
        })
        expect(describeInbound(message!.content).message).toEqual({ type: "text", text: { body: "hold on" } })
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "a conversation reads each Signal key it needs once, not for every message, and every message still decrypts at the phone",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        const { open, login } = yield* pairedChannel(sim)
        const { connection } = yield* open()
        const readsBefore = login.reads.length
        for (let i = 0; i < 5; i++) {
          yield* sendToContact(sim, connection, `3EB0REMEMBER000${i}`, {
            type: "text",
            body: `message ${i}`,
            previewUrl: false
          })
        }
        // each message is encrypted for the contact's phone and the account's own: two sessions, and
        // the contact's token; stored (a write each) as they step forward
        const sessionWrites = login.writes.filter((write) => write.changes.some((c) => c.type === "session"))
        expect(sessionWrites.length).toBeGreaterThanOrEqual(5)
        const readsOf = new Map<string, number>()
        for (const read of login.reads.slice(readsBefore)) {
          for (const id of read.ids)
            readsOf.set(`${read.type}/${id}`, (readsOf.get(`${read.type}/${id}`) ?? 0) + 1)
        }
        const sessionKeys = [...readsOf.keys()].filter((key) => key.startsWith("session/"))
        expect(sessionKeys.length).toBeGreaterThanOrEqual(2)
        expect(Object.fromEntries([...readsOf].filter(([, count]) => count > 1))).toEqual({})
        expect(
          sim
            .received(CONTACT)
            .map((message) => message.message.extendedTextMessage?.text ?? message.message.conversation)
        ).toEqual(expect.arrayContaining(["message 0", "message 1", "message 2", "message 3", "message 4"]))

        // a new connection reads them again (what the last one remembered went with it)
        const before = login.reads.length
        const again = yield* open()
        yield* sendToContact(sim, again.connection, "3EB0REMEMBER0005", {
          type: "text",
          body: "message 5",
          previewUrl: false
        })
        expect(login.reads.slice(before).some((read) => read.type === "session")).toBe(true)
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "an inbound message that could not be stored is left unacknowledged and delivered again at the next login",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        const { open } = yield* pairedChannel(sim)
        let attempts = 0
        const failing = yield* open({
          ...noMessages,
          storeInbound: () =>
            Effect.suspend(() => {
              attempts++
              return Effect.fail("the database is down")
            })
        })
        const { id } = yield* deliverTo(sim, PHONE, { from: CONTACT, message: { conversation: "keep me" } })
        const closed = yield* nextEvent(
          "the connection closes to be delivered the message again",
          failing.connection.events,
          tagged("Close")
        )
        expect(closed.code).toBe(500)
        expect(attempts).toBe(1)
        expect(acknowledged(sim, id)).toBe(false)
        expect(sim.pending(PHONE).map((each) => each.id)).toEqual([id])
        yield* failing.close

        const stored: Array<InboundMessage> = []
        yield* open(storedInto(stored))
        yield* waitUntil(
          "the message, delivered again, is stored and acknowledged",
          Effect.sync(() => stored.length > 0 && acknowledged(sim, id) && sim.pending(PHONE).length === 0),
          { attempts: 400 }
        )
        expect(stored).toHaveLength(1)
        expect(stored[0]).toMatchObject({ whatsappId: id, from: `+${CONTACT}`, type: "append" })
        expect(describeInbound(stored[0]!.content).message).toEqual({
          type: "text",
          text: { body: "keep me" }
        })
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "a recipient's receipt is acknowledged to WhatsApp only once storeReceipts stored it, and is then no Receipt event",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        const { open } = yield* pairedChannel(sim)
        const release = yield* Deferred.make<void>()
        const handed: Array<MessageReceipt> = []
        const { connection } = yield* open({
          ...noMessages,
          storeReceipts: (receipts) =>
            Effect.andThen(
              Effect.sync(() => void handed.push(...receipts)),
              Deferred.await(release)
            )
        })
        sim.setReceipts(CONTACT, { delivered: { delayMs: 300 }, read: "drop" })
        const id = "3EB0RECEIPT0000000001"
        yield* sendToContact(sim, connection, id, { type: "text", body: "receipt me", previewUrl: false })
        yield* waitUntil(
          "the receipt is handed over to be stored",
          Effect.sync(() => handed.some((receipt) => receipt.messageId === id)),
          { attempts: 400 }
        )
        expect(handed).toEqual([{ messageId: id, receipt: "delivered" }])
        yield* staysTrue(
          "while it is being stored, WhatsApp has no ack for it",
          Effect.sync(() =>
            sim.pendingReceipts(PHONE).some((each) => each.id === id && each.type === "delivery")
          ),
          { forMillis: 1000 }
        )

        yield* Deferred.succeed(release, undefined)
        yield* waitUntil(
          "once stored, the receipt is acknowledged",
          Effect.sync(() => sim.pendingReceipts(PHONE).length === 0),
          { attempts: 400 }
        )
        const events = yield* Queue.clear(connection.events)
        expect(events.filter((event) => event._tag === "Receipt")).toEqual([])
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "a receipt that could not be stored is left unacknowledged, the connection closes, and it comes again at the next login",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        const { open } = yield* pairedChannel(sim)
        let attempts = 0
        const failing = yield* open({
          ...noMessages,
          storeReceipts: () =>
            Effect.suspend(() => {
              attempts++
              return Effect.fail("the lease is lost")
            })
        })
        sim.setReceipts(CONTACT, { delivered: { delayMs: 300 }, read: "drop" })
        const id = "3EB0RECEIPT0000000002"
        yield* sendToContact(sim, failing.connection, id, { type: "text", body: "again", previewUrl: false })
        const closed = yield* nextEvent(
          "the connection closes to be delivered the receipt again",
          failing.connection.events,
          tagged("Close")
        )
        expect(closed.code).toBe(500)
        expect(attempts).toBe(1)
        expect(sim.pendingReceipts(PHONE).map((each) => [each.id, each.type])).toEqual([[id, "delivery"]])
        yield* failing.close

        const stored: Array<MessageReceipt> = []
        yield* open({
          ...noMessages,
          storeReceipts: (receipts) => Effect.sync(() => void stored.push(...receipts))
        })
        yield* waitUntil(
          "the receipt, delivered again, is stored and acknowledged",
          Effect.sync(() => stored.length > 0 && sim.pendingReceipts(PHONE).length === 0),
          { attempts: 400 }
        )
        expect(stored).toEqual([{ messageId: id, receipt: "delivered" }])
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "prepared messages of every kind reach the phone as they were built, media decrypted byte for byte, and a resend is the same message",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        yield* trustMediaHost(sim)
        const { open } = yield* pairedChannel(sim)
        const stored: Array<InboundMessage> = []
        const { connection } = yield* open(storedInto(stored))
        const inbound = yield* deliverTo(sim, PHONE, {
          from: CONTACT,
          message: { conversation: "what is the address?" }
        })
        yield* waitUntil(
          "the inbound message is stored",
          Effect.sync(() => stored.length === 1),
          { attempts: 400 }
        )
        const target = { id: inbound.id, fromMe: false, chat: `+${CONTACT}` }

        const text = yield* sendToContact(sim, connection, "3EB0TRANSPORT0001", {
          type: "text",
          body: "plain text",
          previewUrl: false
        })
        expect(text.message.extendedTextMessage?.text).toBe("plain text")

        const image = randomBytes(3000)
        const sentImage = yield* sendToContact(sim, connection, "3EB0TRANSPORT0002", {
          type: "image",
          bytes: image,
          mimetype: "image/jpeg",
          caption: "the door"
        })
        expect(sentImage.message.imageMessage).toMatchObject({ mimetype: "image/jpeg", caption: "the door" })
        expect(sim.receivedMedia(CONTACT, "3EB0TRANSPORT0002")?.equals(image)).toBe(true)

        const document = randomBytes(70_000)
        const sentDocument = yield* sendToContact(sim, connection, "3EB0TRANSPORT0003", {
          type: "document",
          bytes: document,
          mimetype: "application/pdf",
          filename: "map.pdf",
          caption: "the map"
        })
        expect(sentDocument.message.documentMessage).toMatchObject({
          mimetype: "application/pdf",
          fileName: "map.pdf",
          caption: "the map"
        })
        expect(sim.receivedMedia(CONTACT, "3EB0TRANSPORT0003")?.equals(document)).toBe(true)

        const videoBytes = randomBytes(2000)
        const voiceBytes = randomBytes(1500)
        const stickerBytes = randomBytes(800)
        const video = yield* sendToContact(sim, connection, "3EB0TRANSPORT0007", {
          type: "video",
          bytes: videoBytes,
          mimetype: "video/mp4",
          caption: "the way in"
        })
        expect(video.message.videoMessage).toMatchObject({ mimetype: "video/mp4", caption: "the way in" })
        expect(video.message.videoMessage?.mediaKey).toHaveLength(32)
        const voice = yield* sendToContact(sim, connection, "3EB0TRANSPORT0008", {
          type: "audio",
          bytes: voiceBytes,
          mimetype: "audio/ogg; codecs=opus",
          voice: true
        })
        expect(voice.message.audioMessage).toMatchObject({ mimetype: "audio/ogg; codecs=opus", ptt: true })
        const sticker = yield* sendToContact(sim, connection, "3EB0TRANSPORT0009", {
          type: "sticker",
          bytes: stickerBytes,
          mimetype: "image/webp"
        })
        expect(sticker.message.stickerMessage).toMatchObject({ mimetype: "image/webp" })
        expect(sim.receivedMedia(CONTACT, "3EB0TRANSPORT0007")?.equals(videoBytes)).toBe(true)
        expect(sim.receivedMedia(CONTACT, "3EB0TRANSPORT0008")?.equals(voiceBytes)).toBe(true)
        expect(sim.receivedMedia(CONTACT, "3EB0TRANSPORT0009")?.equals(stickerBytes)).toBe(true)

        const location = yield* sendToContact(sim, connection, "3EB0TRANSPORT0004", {
          type: "location",
          latitude: 52.52,
          longitude: 13.405,
          name: "Office",
          address: "Alexanderplatz 1"
        })
        expect(location.message.locationMessage).toMatchObject({
          degreesLatitude: 52.52,
          degreesLongitude: 13.405,
          name: "Office",
          address: "Alexanderplatz 1"
        })

        const reaction = yield* sendToContact(sim, connection, "3EB0TRANSPORT0005", {
          type: "reaction",
          target,
          emoji: "👍"
        })
        expect(reaction.message.reactionMessage?.text).toBe("👍")
        expect(reaction.message.reactionMessage?.key).toMatchObject({ id: inbound.id, fromMe: false })

        const reply = yield* sendToContact(sim, connection, "3EB0TRANSPORT0006", {
          type: "text",
          body: "Alexanderplatz 1",
          previewUrl: false,
          quoted: { key: target, content: stored[0]!.content }
        })
        expect(reply.message.extendedTextMessage?.contextInfo).toMatchObject({
          stanzaId: inbound.id,
          participant: `${CONTACT}@s.whatsapp.net`,
          quotedMessage: { conversation: "what is the address?" }
        })
        // what the API says of such messages, when they come the other way
        expect(describeInbound(reply.prepared).message).toEqual({
          type: "text",
          text: { body: "Alexanderplatz 1" },
          context: { whatsapp_id: inbound.id }
        })

        // the stored message, sent again under its id: the phone gets the same message, not another
        yield* connection.send({ id: "3EB0TRANSPORT0002", to: `+${CONTACT}`, content: sentImage.prepared })
        yield* waitUntil(
          "the resend reaches the phone",
          Effect.sync(
            () => sim.received(CONTACT).filter((each) => each.id === "3EB0TRANSPORT0002").length === 2
          ),
          { attempts: 400 }
        )
        const copies = sim.received(CONTACT).filter((each) => each.id === "3EB0TRANSPORT0002")
        expect(proto.Message.encode(copies[1]!.message).finish()).toEqual(
          proto.Message.encode(copies[0]!.message).finish()
        )
        expect(sim.receivedMedia(CONTACT, "3EB0TRANSPORT0002")?.equals(image)).toBe(true)
        expect(new Set(sim.received(CONTACT).map((each) => each.id)).size).toBe(9)

        // and the inbound message is marked read
        yield* connection.markRead([target])
        yield* waitUntil(
          "the read receipt reaches WhatsApp",
          Effect.sync(() =>
            sim.receiptsFrom(PHONE).some((each) => each.id === inbound.id && each.type === "read")
          ),
          { attempts: 400 }
        )
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "a recipient's retry receipt after a reconnect is answered with the content the outbox stored, and a played receipt is its own",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        // the phone never reads: the one receipt after delivery is the played one sent below
        sim.setReceipts(CONTACT, { read: "drop" })
        const { open } = yield* pairedChannel(sim)
        const first = yield* open()
        const id = "3EB0TRANSPORT0101"
        const { prepared } = yield* sendToContact(sim, first.connection, id, {
          type: "text",
          body: "say again?",
          previewUrl: false
        })
        yield* first.close

        // a new socket: Baileys' own cache of recent messages is gone, only getMessage can answer
        const askedFor: Array<string> = []
        const { connection } = yield* open({
          ...noMessages,
          sentContent: (whatsappId) =>
            Effect.sync(() => {
              askedFor.push(whatsappId)
              return whatsappId === id ? prepared : undefined
            })
        })
        const [device] = sim.connectionsOf(PHONE)
        const now = String(Math.floor(Date.now() / 1000))
        device!.send({
          tag: "receipt",
          attrs: { from: `${CONTACT}@s.whatsapp.net`, id, type: "retry", t: now },
          content: [{ tag: "retry", attrs: { count: "1", id, t: now, v: "1" } }]
        })
        yield* waitUntil(
          "the message is sent again, from the stored content",
          Effect.sync(() => sim.received(CONTACT).filter((each) => each.id === id).length === 2),
          { attempts: 400 }
        )
        expect(askedFor).toEqual([id])
        expect(sim.received(CONTACT).map((each) => each.message.extendedTextMessage?.text)).toEqual([
          "say again?",
          "say again?"
        ])

        device!.send({
          tag: "receipt",
          attrs: { from: `${CONTACT}@s.whatsapp.net`, id, type: "played", t: now }
        })
        const played = yield* nextEvent(
          "the played receipt",
          connection.events,
          (event): event is Extract<typeof event, { _tag: "Receipt" }> =>
            event._tag === "Receipt" && event.messageId === id && event.receipt !== "delivered"
        )
        expect(played.receipt).toBe("played")
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "the file of an inbound image or document is downloaded and decrypted from its stored content alone",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        yield* trustMediaHost(sim)
        const { open } = yield* pairedChannel(sim)
        const stored: Array<InboundMessage> = []
        yield* open(storedInto(stored))
        const image = randomBytes(5000)
        const document = randomBytes(100_000)
        yield* deliverTo(sim, PHONE, {
          from: CONTACT,
          media: { kind: "image", bytes: image, mimetype: "image/png", caption: "a photo" }
        })
        yield* deliverTo(sim, PHONE, {
          from: CONTACT,
          media: { kind: "document", bytes: document, mimetype: "application/zip", fileName: "files.zip" }
        })
        yield* deliverTo(sim, PHONE, { from: CONTACT, message: { conversation: "no file here" } })
        yield* waitUntil(
          "the three messages are stored",
          Effect.sync(() => stored.length === 3),
          { attempts: 400 }
        )
        const [storedImage, storedDocument, storedText] = stored

        expect(describeInbound(storedImage!.content)).toEqual({
          message: {
            type: "image",
            image: expect.objectContaining({ mime_type: "image/png", caption: "a photo", file_length: 5000 })
          },
          hasMedia: true
        })
        const downloadedImage = yield* downloadMedia(storedImage!.content, { host: sim.mediaHost })
        expect(downloadedImage).toMatchObject({ mimetype: "image/png", fileLength: 5000 })
        expect(Buffer.from(yield* Stream.mkUint8Array(downloadedImage.stream)).equals(image)).toBe(true)

        const downloadedDocument = yield* downloadMedia(storedDocument!.content, { host: sim.mediaHost })
        expect(downloadedDocument).toMatchObject({ mimetype: "application/zip", fileName: "files.zip" })
        expect(Buffer.from(yield* Stream.mkUint8Array(downloadedDocument.stream)).equals(document)).toBe(true)

        // the sender writes the message: the host its URL names is never the one downloaded from
        const redirected = proto.Message.decode(storedImage!.content)
        redirected.imageMessage!.url = "https://169.254.169.254/latest/meta-data"
        const fromOurHost = yield* downloadMedia(proto.Message.encode(redirected).finish(), {
          host: sim.mediaHost
        })
        expect(Buffer.from(yield* Stream.mkUint8Array(fromOurHost.stream)).equals(image)).toBe(true)

        // bytes that are not the file the message names fail the stream
        const tampered = proto.Message.decode(storedImage!.content)
        tampered.imageMessage!.fileSha256 = randomBytes(32)
        const wrong = yield* downloadMedia(proto.Message.encode(tampered).finish(), { host: sim.mediaHost })
        const failure = yield* Effect.flip(Stream.mkUint8Array(wrong.stream))
        expect(failure).toMatchObject({ _tag: "MediaDownloadError", reason: "failed" })

        const none = yield* Effect.flip(downloadMedia(storedText!.content, { host: sim.mediaHost }))
        expect(none).toMatchObject({ _tag: "MediaDownloadError", reason: "no_media" })

        const gone = proto.Message.decode(storedImage!.content)
        gone.imageMessage!.directPath = "/v/t62.7118-24/gone.enc"
        const expired = yield* Effect.flip(
          downloadMedia(proto.Message.encode(gone).finish(), { host: sim.mediaHost })
        )
        expect(expired).toMatchObject({ _tag: "MediaDownloadError", reason: "expired" })
      }).pipe(Effect.scoped),
    120_000
  )
})
