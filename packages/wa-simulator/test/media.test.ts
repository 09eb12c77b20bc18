import { downloadMediaMessage, getMediaKeys, type WAMessage } from "@whiskeysockets/baileys"
import { execFile } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { getCACertificates, setDefaultCACertificates } from "node:tls"
import { afterEach, describe, expect, it } from "vitest"
import { startControlServer, type Simulator } from "../src/index.ts"
import { decryptMedia, encryptMedia, mediaKeys } from "../src/media.ts"
import { eventually, recordMessageStanzas, testLogger } from "./baileys-client.ts"
import { useHarness } from "./harness.ts"

const PHONE = "15550003333"
const CONTACT = "15550004444"
const CONTACT_JID = `${CONTACT}@s.whatsapp.net`

describe("media through the simulator's HTTPS media host", () => {
  const { simulator, baileys, pair } = useHarness()
  const trustedByDefault = getCACertificates("default")
  // Baileys uploads with node:https and downloads with the global fetch; both trust the default CAs.
  afterEach(() => setDefaultCACertificates(trustedByDefault))

  const openDevice = async () => {
    const sim: Simulator = await simulator()
    setDefaultCACertificates([...trustedByDefault, sim.mediaCertificate])
    const auth = await pair(sim, PHONE)
    const client = baileys(sim, auth, { shouldSyncHistoryMessage: () => false })
    await client.waitFor((update) => update.connection === "open")
    return { sim, client }
  }

  it("media keys expand as Baileys expands them, and a tampered file is refused", async () => {
    const mediaKey = randomBytes(32)
    for (const kind of ["image", "video", "audio", "document", "sticker"] as const) {
      const ours = mediaKeys(mediaKey, kind)
      const baileys = await getMediaKeys(mediaKey, kind)
      for (const name of ["iv", "cipherKey", "macKey"] as const) {
        expect(ours[name].equals(Buffer.from(baileys[name]!))).toBe(true)
      }
    }
    const plaintext = randomBytes(100)
    const { mediaKey: key, encrypted } = encryptMedia(plaintext, "document")
    expect(decryptMedia(encrypted, key, "document").equals(plaintext)).toBe(true)
    const tampered = Buffer.from(encrypted)
    tampered[0] = tampered[0]! ^ 1
    expect(() => decryptMedia(tampered, key, "document")).toThrow(/MAC/)
    expect(() => decryptMedia(encrypted, key, "image")).toThrow(/MAC/)
  })

  it("a document sent by Baileys is uploaded, and the simulated phone downloads and decrypts it", async () => {
    const { sim, client } = await openDevice()
    const bytes = randomBytes(5000)
    const sent = await client.socket.sendMessage(CONTACT_JID, {
      document: bytes,
      mimetype: "application/pdf",
      fileName: "invoice.pdf"
    })
    const id = sent!.key.id!
    await eventually(() => sim.received(CONTACT).some((each) => each.id === id))
    const { message } = sim.received(CONTACT).find((each) => each.id === id)!
    expect(message.documentMessage).toMatchObject({ mimetype: "application/pdf", fileName: "invoice.pdf" })
    expect(message.documentMessage?.directPath).toMatch(/^\/v\//)
    expect(sim.receivedMedia(CONTACT, id)?.equals(bytes)).toBe(true)
  })

  it("an image sent by Baileys is uploaded, and the simulated phone downloads and decrypts it", async () => {
    const { sim, client } = await openDevice()
    const bytes = randomBytes(777)
    const sent = await client.socket.sendMessage(CONTACT_JID, {
      image: bytes,
      mimetype: "image/jpeg",
      caption: "look"
    })
    const id = sent!.key.id!
    await eventually(() => sim.received(CONTACT).some((each) => each.id === id))
    const { message } = sim.received(CONTACT).find((each) => each.id === id)!
    expect(message.imageMessage).toMatchObject({ mimetype: "image/jpeg", caption: "look" })
    expect(sim.receivedMedia(CONTACT, id)?.equals(bytes)).toBe(true)
  })

  it("a video, an audio, a voice note and a sticker sent by Baileys are uploaded, and the simulated phone decrypts each", async () => {
    const { sim, client } = await openDevice()
    const files = {
      video: randomBytes(4000),
      audio: randomBytes(1500),
      voice: randomBytes(900),
      sticker: randomBytes(600)
    }
    const contents = [
      { video: files.video, mimetype: "video/mp4", caption: "a clip", jpegThumbnail: "" },
      { audio: files.audio, mimetype: "audio/mp4", seconds: 3 },
      {
        audio: files.voice,
        mimetype: "audio/ogg; codecs=opus",
        ptt: true,
        seconds: 2,
        waveform: new Uint8Array(64)
      },
      { sticker: files.sticker, mimetype: "image/webp" }
    ]
    const ids: string[] = []
    for (const content of contents) ids.push((await client.socket.sendMessage(CONTACT_JID, content))!.key.id!)
    await eventually(() => ids.every((id) => sim.received(CONTACT).some((each) => each.id === id)))
    const messageOf = (id: string) => sim.received(CONTACT).find((each) => each.id === id)!.message
    const [video, audio, voice, sticker] = ids as [string, string, string, string]
    expect(messageOf(video).videoMessage).toMatchObject({ mimetype: "video/mp4", caption: "a clip" })
    expect(messageOf(audio).audioMessage).toMatchObject({ mimetype: "audio/mp4" })
    expect(messageOf(audio).audioMessage?.ptt).toBeFalsy()
    expect(messageOf(voice).audioMessage).toMatchObject({ ptt: true })
    expect(messageOf(sticker).stickerMessage).toMatchObject({ mimetype: "image/webp" })
    expect(sim.receivedMedia(CONTACT, video)?.equals(files.video)).toBe(true)
    expect(sim.receivedMedia(CONTACT, audio)?.equals(files.audio)).toBe(true)
    expect(sim.receivedMedia(CONTACT, voice)?.equals(files.voice)).toBe(true)
    expect(sim.receivedMedia(CONTACT, sticker)?.equals(files.sticker)).toBe(true)
    // Baileys uploads each kind to its own path: /mms/video, /mms/audio, and /mms/image for a sticker.
    expect(sim.mediaUploads().map((upload) => upload.path.split("/").slice(0, 3).join("/"))).toEqual([
      "/mms/video",
      "/mms/audio",
      "/mms/audio",
      "/mms/image"
    ])
  })

  it("an inbound video, audio, voice note and sticker, encrypted by the phone, reach messages.upsert, and Baileys downloads and decrypts each", async () => {
    const { sim, client } = await openDevice()
    const notified: WAMessage[] = []
    client.socket.ev.on("messages.upsert", ({ type, messages }) => {
      if (type === "notify") notified.push(...messages)
    })
    const stanzas = recordMessageStanzas(client.socket)
    const deliveries = [
      { kind: "video", bytes: randomBytes(5000), mimetype: "video/mp4", caption: "watch" },
      { kind: "audio", bytes: randomBytes(2000), mimetype: "audio/mpeg" },
      { kind: "audio", bytes: randomBytes(1000), mimetype: "audio/ogg; codecs=opus", ptt: true },
      { kind: "sticker", bytes: randomBytes(700), mimetype: "image/webp" }
    ] as const
    const ids: string[] = []
    for (const media of deliveries) ids.push((await sim.deliver(PHONE, { from: CONTACT, media })).id)
    await eventually(() => ids.every((id) => notified.some((each) => each.key.id === id)))
    const byId = (id: string) => notified.find((each) => each.key.id === id)!
    const [video, audio, voice, sticker] = ids.map(byId) as [WAMessage, WAMessage, WAMessage, WAMessage]
    expect(video.message?.videoMessage).toMatchObject({ caption: "watch", mimetype: "video/mp4" })
    expect(audio.message?.audioMessage).toMatchObject({ mimetype: "audio/mpeg" })
    expect(audio.message?.audioMessage?.ptt).toBeFalsy()
    expect(voice.message?.audioMessage).toMatchObject({ ptt: true })
    expect(sticker.message?.stickerMessage).toMatchObject({ mimetype: "image/webp" })
    // Encrypted by the phone: it opened the session, and the device has not answered in it yet.
    expect(stanzas.map((stanza) => [stanza.id, stanza.payload])).toEqual(ids.map((id) => [id, "pkmsg"]))
    const download = (message: WAMessage) =>
      downloadMediaMessage(
        message,
        "buffer",
        {},
        { logger: testLogger, reuploadRequest: client.socket.updateMediaMessage }
      )
    for (const [index, message] of [video, audio, voice, sticker].entries()) {
      expect((await download(message)).equals(Buffer.from(deliveries[index]!.bytes))).toBe(true)
    }
  })

  it("an inbound image and document reach messages.upsert, and Baileys downloads and decrypts them", async () => {
    const { sim, client } = await openDevice()
    const notified: WAMessage[] = []
    client.socket.ev.on("messages.upsert", ({ type, messages }) => {
      if (type === "notify") notified.push(...messages)
    })
    const image = randomBytes(1234)
    const document = randomBytes(70_000)
    const first = await sim.deliver(PHONE, {
      from: CONTACT,
      media: { kind: "image", bytes: image, mimetype: "image/jpeg", caption: "a photo" }
    })
    const second = await sim.deliver(PHONE, {
      from: CONTACT,
      media: { kind: "document", bytes: document, mimetype: "application/pdf", fileName: "report.pdf" }
    })
    await eventually(() => [first.id, second.id].every((id) => notified.some((each) => each.key.id === id)))
    const byId = (id: string) => notified.find((each) => each.key.id === id)!
    expect(byId(first.id).message?.imageMessage).toMatchObject({ caption: "a photo", mimetype: "image/jpeg" })
    expect(byId(second.id).message?.documentMessage).toMatchObject({ fileName: "report.pdf" })
    const download = (message: WAMessage) =>
      downloadMediaMessage(
        message,
        "buffer",
        {},
        { logger: testLogger, reuploadRequest: client.socket.updateMediaMessage }
      )
    expect((await download(byId(first.id))).equals(image)).toBe(true)
    expect((await download(byId(second.id))).equals(document)).toBe(true)
  })

  it("the media host is untrusted until its certificate is, refuses a wrong auth and serves no unknown path", async () => {
    const sim = await simulator()
    await expect(fetch(`https://${sim.mediaHost}/v/t62.7118-24/missing.enc`)).rejects.toThrow()
    setDefaultCACertificates([...trustedByDefault, sim.mediaCertificate])
    const upload = await fetch(`https://${sim.mediaHost}/mms/image/abc?auth=wrong&token=abc`, {
      method: "POST",
      body: new Uint8Array([1, 2, 3])
    })
    expect(upload.status).toBe(401)
    const download = await fetch(`https://${sim.mediaHost}/v/t62.7118-24/missing.enc`)
    expect(download.status).toBe(404)
  })

  it("through the control API: media delivered as base64, and what the phone received read back", async () => {
    const { sim, client } = await openDevice()
    const control = await startControlServer(sim)
    try {
      const call = async (method: string, path: string, body?: unknown) => {
        const response = await fetch(`${control.url}${path}`, {
          method,
          ...(body === undefined ? {} : { body: JSON.stringify(body) })
        })
        return { status: response.status, body: (await response.json()) as Record<string, unknown> }
      }
      expect(await call("GET", "/media")).toEqual({
        status: 200,
        body: { host: sim.mediaHost, certificate: sim.mediaCertificate }
      })
      const notified: WAMessage[] = []
      client.socket.ev.on("messages.upsert", ({ messages }) => notified.push(...messages))
      const image = randomBytes(3000)
      const delivered = await call("POST", "/deliver", {
        to: PHONE,
        from: CONTACT,
        media: { kind: "image", base64: image.toString("base64"), mimetype: "image/jpeg", caption: "via api" }
      })
      expect(delivered).toMatchObject({ status: 200, body: { devices: 1 } })
      const id = delivered.body.id as string
      await eventually(() => notified.some((each) => each.key.id === id))
      const upserted = notified.find((each) => each.key.id === id)!
      expect(upserted.message?.imageMessage?.caption).toBe("via api")
      expect((await downloadMediaMessage(upserted, "buffer", {})).equals(image)).toBe(true)

      const document = randomBytes(2500)
      const sent = await client.socket.sendMessage(CONTACT_JID, {
        document,
        mimetype: "text/plain",
        fileName: "notes.txt"
      })
      const sentId = sent!.key.id!
      await eventually(() => sim.received(CONTACT).some((each) => each.id === sentId))
      expect(await call("GET", `/accounts/${CONTACT}/received/${sentId}/media`)).toEqual({
        status: 200,
        body: { base64: document.toString("base64") }
      })
      expect((await call("GET", `/accounts/${CONTACT}/received/nope/media`)).status).toBe(404)
      const refused = await call("POST", "/deliver", {
        to: PHONE,
        from: CONTACT,
        media: { kind: "gif", base64: "AAAA", mimetype: "video/mp4" }
      })
      expect(refused).toMatchObject({ status: 400, body: { error: expect.stringMatching(/media.kind/) } })
    } finally {
      await control.close()
    }
  })

  it("another process trusts the media host through NODE_EXTRA_CA_CERTS", async () => {
    const sim = await simulator()
    const dir = mkdtempSync(join(tmpdir(), "wa-simulator-ca-"))
    try {
      const certificateFile = join(dir, "media.pem")
      writeFileSync(certificateFile, sim.mediaCertificate)
      const script = `fetch(${JSON.stringify(`https://${sim.mediaHost}/v/missing.enc`)}).then((r) => console.log(r.status))`
      const { stdout } = await promisify(execFile)(process.execPath, ["-e", script], {
        env: { ...process.env, NODE_EXTRA_CA_CERTS: certificateFile }
      })
      expect(stdout.trim()).toBe("404")
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
