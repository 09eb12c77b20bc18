import { proto, type UserFacingSocketConfig, type WAMessage } from "@whiskeysockets/baileys"
import { getCACertificates, setDefaultCACertificates } from "node:tls"
import { afterEach, describe, expect, it } from "vitest"
import { startControlServer, type Simulator } from "../src/index.ts"
import { eventually, recordMessageStanzas } from "./baileys-client.ts"
import { useHarness } from "./harness.ts"

const PHONE = "15550005555"
const CONTACT = "15550006666"
const CONTACT_JID = `${CONTACT}@s.whatsapp.net`

/** Every message a socket upserts, with the upsert's type (`notify`, or `append` for offline ones). */
const collectUpserts = (socket: {
  ev: {
    on: (
      event: "messages.upsert",
      listener: (upsert: { type: string; messages: WAMessage[] }) => void
    ) => void
  }
}) => {
  const upserts: Array<{ type: string; message: WAMessage }> = []
  socket.ev.on("messages.upsert", ({ type, messages }) => {
    for (const message of messages) upserts.push({ type, message })
  })
  return upserts
}

describe("messages the simulated phone sends to linked devices", () => {
  const { simulator, baileys, pair } = useHarness()
  const trustedByDefault = getCACertificates("default")
  afterEach(() => setDefaultCACertificates(trustedByDefault))

  const connect = (
    sim: Simulator,
    auth: Awaited<ReturnType<typeof pair>>,
    options: Partial<UserFacingSocketConfig> = {}
  ) => {
    // As the gateway does: no history sync, so events are not held back waiting for one.
    const client = baileys(sim, auth, { shouldSyncHistoryMessage: () => false, ...options })
    const upserts = collectUpserts(client.socket)
    const stanzas = recordMessageStanzas(client.socket, sim.now)
    return { client, upserts, stanzas }
  }

  const openDevice = async (options: Partial<UserFacingSocketConfig> = {}) => {
    const sim = await simulator()
    const auth = await pair(sim, PHONE)
    const device = connect(sim, auth, options)
    await device.client.waitFor((update) => update.connection === "open")
    return { sim, auth, ...device }
  }

  /**
   * A first message from the contact, received and acknowledged: the device has looked the contact
   * up (its LID) by then, so a later message needs no query, and a stalled number does not hold it back.
   */
  const warmUp = async (sim: Simulator, upserts: Array<{ message: WAMessage }>) => {
    const { id } = await sim.deliver(PHONE, { from: CONTACT, message: { conversation: "hello" } })
    await eventually(() => textsOf(upserts, id).length === 1)
    await eventually(() => sim.receiptsFrom(PHONE).some((receipt) => receipt.id === id))
  }

  const textsOf = (upserts: Array<{ message: WAMessage }>, id: string) =>
    upserts
      .filter(({ message }) => message.key.id === id)
      .map(({ message }) => message.message?.conversation ?? message.message?.extendedTextMessage?.text)

  it("is Signal-encrypted: pkmsg while the device has not answered in the session the phone opened, msg once it has, and Baileys decrypts each", async () => {
    const { sim, client, upserts, stanzas } = await openDevice()
    const first = await sim.deliver(PHONE, { from: CONTACT, message: { conversation: "one" } })
    const second = await sim.deliver(PHONE, { from: CONTACT, message: { conversation: "two" } })
    await eventually(() => textsOf(upserts, second.id).length === 1)
    await client.socket.sendMessage(CONTACT_JID, { text: "an answer" })
    await eventually(() => sim.received(CONTACT).length === 1)
    const third = await sim.deliver(PHONE, { from: CONTACT, message: { conversation: "three" } })
    await eventually(() => textsOf(upserts, third.id).length === 1)
    expect(stanzas.map((stanza) => [stanza.id, stanza.payload])).toEqual([
      [first.id, "pkmsg"],
      [second.id, "pkmsg"],
      [third.id, "msg"]
    ])
    expect([first.id, second.id, third.id].map((id) => textsOf(upserts, id))).toEqual([
      ["one"],
      ["two"],
      ["three"]
    ])
    const inbound = upserts.filter(({ message }) => !message.key.fromMe)
    expect(inbound.map(({ type, message }) => [type, message.messageStubType ?? null])).toEqual([
      ["notify", null],
      ["notify", null],
      ["notify", null]
    ])
  })

  it("is sent as <plaintext> when asked", async () => {
    const { sim, upserts, stanzas } = await openDevice()
    const { id } = await sim.deliver(PHONE, {
      from: CONTACT,
      message: { conversation: "in the clear" },
      encryption: "plaintext"
    })
    await eventually(() => textsOf(upserts, id).length === 1)
    expect(stanzas).toEqual([expect.objectContaining({ id, payload: "plaintext" })])
    expect(textsOf(upserts, id)).toEqual(["in the clear"])
  })

  it("reaches a device that was offline at its next login, encrypted with a one-time pre-key it uploaded", async () => {
    const { sim, auth, client } = await openDevice()
    const device = sim.account(PHONE)!.devices.get(1)!
    await eventually(() => device.preKeys.size > 0)
    client.socket.end(undefined)
    await eventually(() => sim.connectionsOf(PHONE).length === 0)
    const uploaded = device.preKeys.size
    const queued = await sim.deliver(PHONE, {
      from: CONTACT,
      message: { conversation: "while you were away" }
    })
    expect(queued).toMatchObject({ devices: 0, queued: true })
    // The phone opened its session with one of the device's one-time pre-keys; the server hands each out once.
    expect(device.preKeys.size).toBe(uploaded - 1)
    const later = connect(sim, auth)
    await eventually(() => textsOf(later.upserts, queued.id).length === 1)
    expect(later.upserts).toEqual([expect.objectContaining({ type: "append" })])
    expect(textsOf(later.upserts, queued.id)).toEqual(["while you were away"])
    expect(later.stanzas).toEqual([
      expect.objectContaining({ id: queued.id, payload: "pkmsg", offline: true })
    ])
  })

  it("copies: 2 delivers the message twice, the second copy once the device acknowledged the first: two upserts with the same id, encrypted or not", async () => {
    const { sim, upserts, stanzas } = await openDevice()
    for (const encryption of ["signal", "plaintext"] as const) {
      const { id } = await sim.deliver(PHONE, {
        from: CONTACT,
        message: { conversation: `twice, ${encryption}` },
        encryption,
        copies: 2
      })
      await eventually(() => textsOf(upserts, id).length === 2)
      expect(textsOf(upserts, id)).toEqual([`twice, ${encryption}`, `twice, ${encryption}`])
      const copies = stanzas.filter((stanza) => stanza.id === id)
      expect(copies.map((copy) => copy.payload)).toEqual(
        encryption === "signal" ? ["pkmsg", "pkmsg"] : ["plaintext", "plaintext"]
      )
      const firstReceipt = sim
        .connectionHistory(PHONE)
        .flatMap((record) => record.stanzas)
        .find((stanza) => stanza.tag === "receipt" && stanza.attrs.id === id)
      expect(firstReceipt!.at).toBeLessThan(copies[1]!.at)
    }
  })

  it("a message the device never acknowledged is delivered again at its next login, as an offline append", async () => {
    const { sim, auth, client, upserts } = await openDevice()
    await warmUp(sim, upserts)
    // Stalled, the number's devices are not heard: the device's receipt never reaches the server.
    sim.stall(PHONE, true)
    const { id } = await sim.deliver(PHONE, {
      from: CONTACT,
      message: { conversation: "say you got it" },
      encryption: "plaintext"
    })
    await eventually(() => textsOf(upserts, id).length === 1)
    await eventually(() => sim.held(PHONE) > 0)
    client.socket.end(undefined)
    await eventually(() => sim.connectionsOf(PHONE).length === 0)
    sim.stall(PHONE, false)
    const later = connect(sim, auth)
    await eventually(() => textsOf(later.upserts, id).length === 1)
    expect(later.upserts).toEqual([expect.objectContaining({ type: "append" })])
    expect(later.stanzas).toEqual([expect.objectContaining({ id, payload: "plaintext", offline: true })])
    await eventually(() => sim.receiptsFrom(PHONE).some((receipt) => receipt.id === id))
    // Acknowledged this time: a third login gets nothing.
    later.client.socket.end(undefined)
    await eventually(() => sim.connectionsOf(PHONE).length === 0)
    const third = connect(sim, auth)
    await third.client.waitFor((update) => update.receivedPendingNotifications === true)
    expect(third.stanzas).toEqual([])
  })

  it("an encrypted message delivered again after the device decrypted it: a msg is asked again with a retry receipt and the phone encrypts it anew; a pkmsg is refused (487) and lost", async () => {
    const { sim, auth, client, upserts } = await openDevice()
    await warmUp(sim, upserts)
    sim.stall(PHONE, true)
    const lost = await sim.deliver(PHONE, { from: CONTACT, message: { conversation: "opening" } })
    await eventually(() => textsOf(upserts, lost.id).length === 1)
    client.socket.end(undefined)
    await eventually(() => sim.connectionsOf(PHONE).length === 0)
    sim.stall(PHONE, false)
    const second = connect(sim, auth)
    await eventually(() =>
      sim
        .connectionHistory(PHONE)
        .at(-1)!
        .stanzas.some((stanza) => stanza.tag === "ack" && stanza.attrs.id === lost.id)
    )
    const nack = sim
      .connectionHistory(PHONE)
      .at(-1)!
      .stanzas.find((stanza) => stanza.tag === "ack" && stanza.attrs.id === lost.id)
    expect(nack!.attrs).toMatchObject({ class: "message", error: "487" })
    expect(second.stanzas).toEqual([
      expect.objectContaining({ id: lost.id, payload: "pkmsg", offline: true })
    ])
    expect(textsOf(second.upserts, lost.id)).toEqual([])

    // The device answers in the session, so the phone's next message is a msg.
    await second.client.socket.sendMessage(CONTACT_JID, { text: "an answer" })
    await eventually(() => sim.received(CONTACT).length === 1)
    sim.stall(PHONE, true)
    const asked = await sim.deliver(PHONE, { from: CONTACT, message: { conversation: "ask again" } })
    await eventually(() => textsOf(second.upserts, asked.id).length === 1)
    second.client.socket.end(undefined)
    await eventually(() => sim.connectionsOf(PHONE).length === 0)
    sim.stall(PHONE, false)
    const third = connect(sim, auth)
    await eventually(() => textsOf(third.upserts, asked.id).includes("ask again"))
    expect(third.stanzas.map((stanza) => [stanza.payload, stanza.offline, stanza.count])).toEqual([
      ["msg", true, undefined],
      ["msg", false, "1"]
    ])
    expect(
      sim
        .receiptsFrom(PHONE)
        .filter((receipt) => receipt.id === asked.id)
        .map((receipt) => receipt.type)
    ).toContain("retry")
  })

  it("a retry receipt from the phone makes Baileys look the message up with getMessage and send it again; the phone records the resend", async () => {
    const sent = new Map<string, proto.IMessage>()
    const looked: string[] = []
    const { sim, client } = await openDevice({
      // No recent-message cache: Baileys must ask getMessage, as the gateway's store answers it.
      enableRecentMessageCache: false,
      getMessage: (key) => {
        looked.push(key.id ?? "")
        return Promise.resolve(sent.get(key.id ?? ""))
      }
    })
    const message = await client.socket.sendMessage(CONTACT_JID, { text: "did you get it?" })
    const id = message!.key.id!
    sent.set(id, message!.message!)
    await eventually(() => sim.received(CONTACT).length === 1)
    const request = sim.sendRetryReceipt(CONTACT, id)
    expect(request).toMatchObject({ id, to: `${PHONE}:1@s.whatsapp.net`, count: 1, acked: false })
    await eventually(() => sim.retryRequests(CONTACT)[0]!.acked)
    expect(looked).toEqual([id])
    expect(sim.retryRequests(CONTACT)).toEqual([expect.objectContaining({ id, acked: true, answered: true })])
    expect(
      sim.received(CONTACT).map((each) => [each.id, each.resend, each.message.extendedTextMessage?.text])
    ).toEqual([
      [id, false, "did you get it?"],
      [id, true, "did you get it?"]
    ])

    // From the second retry the receipt carries the phone's keys: Baileys opens a new session with
    // them, and asks the server for no bundle (which would hand out another of the phone's pre-keys).
    const unissued = sim.account(CONTACT)!.phoneKeys.unissued.length
    sim.sendRetryReceipt(CONTACT, id, 2)
    await eventually(() => sim.retryRequests(CONTACT)[1]?.acked === true)
    expect(sim.retryRequests(CONTACT)[1]).toMatchObject({ count: 2, answered: true })
    expect(sim.received(CONTACT).map((each) => each.resend)).toEqual([false, true, true])
    expect(sim.account(CONTACT)!.phoneKeys.unissued.length).toBe(unissued - 1)
  })

  it("a retry receipt for a message Baileys cannot find (getMessage answers nothing): nothing is sent again", async () => {
    const looked: string[] = []
    const { sim, client } = await openDevice({
      enableRecentMessageCache: false,
      getMessage: (key) => {
        looked.push(key.id ?? "")
        return Promise.resolve(undefined)
      }
    })
    const message = await client.socket.sendMessage(CONTACT_JID, { text: "forgotten" })
    const id = message!.key.id!
    await eventually(() => sim.received(CONTACT).length === 1)
    sim.sendRetryReceipt(CONTACT, id)
    await eventually(() => sim.retryRequests(CONTACT)[0]!.acked)
    expect(looked).toEqual([id])
    expect(sim.retryRequests(CONTACT)).toEqual([
      expect.objectContaining({ id, acked: true, answered: false })
    ])
    expect(sim.received(CONTACT).map((each) => each.id)).toEqual([id])
    expect(() => sim.sendRetryReceipt(CONTACT, "3EB0NEVERSENT")).toThrow(/received no message/)
  })

  it("a voice note the recipient reads is then played: messages.update reaches PLAYED; an audio that is no voice note stops at READ", async () => {
    const { sim, client } = await openDevice()
    // Baileys uploads the audio to the media host, over HTTPS with the host's own certificate.
    setDefaultCACertificates([...trustedByDefault, sim.mediaCertificate])
    const updates: Array<{ id: string; status: number | null | undefined }> = []
    client.socket.ev.on("messages.update", (batch) => {
      for (const each of batch) updates.push({ id: each.key.id ?? "", status: each.update.status })
    })
    // Spaced out: receipts that arrive while Baileys still buffers the sent message's upsert are folded into it.
    sim.setReceipts(CONTACT, {
      delivered: { delayMs: 300 },
      read: { delayMs: 100 },
      played: { delayMs: 100 }
    })
    const audio = await client.socket.sendMessage(CONTACT_JID, {
      audio: Buffer.from("not a voice note"),
      mimetype: "audio/mpeg",
      seconds: 1
    })
    const voice = await client.socket.sendMessage(CONTACT_JID, {
      audio: Buffer.from("a voice note"),
      mimetype: "audio/ogg; codecs=opus",
      ptt: true,
      seconds: 1
    })
    const statusesOf = (id: string) => updates.filter((each) => each.id === id).map((each) => each.status)
    await eventually(() => statusesOf(voice!.key.id!).includes(proto.WebMessageInfo.Status.PLAYED))
    const { DELIVERY_ACK, READ, PLAYED } = proto.WebMessageInfo.Status
    expect(statusesOf(voice!.key.id!)).toEqual([DELIVERY_ACK, READ, PLAYED])
    expect(statusesOf(audio!.key.id!)).toEqual([DELIVERY_ACK, READ])
  })

  it("through the control API: kinds the gateway may not know, encryption, copies, a voice note, retry receipts, and what is refused", async () => {
    const { sim, client, upserts, stanzas } = await openDevice({
      enableRecentMessageCache: false,
      getMessage: () => Promise.resolve(undefined)
    })
    const control = await startControlServer(sim)
    try {
      const call = async (method: string, path: string, body?: unknown) => {
        const response = await fetch(`${control.url}${path}`, {
          method,
          ...(body === undefined ? {} : { body: JSON.stringify(body) })
        })
        return { status: response.status, body: (await response.json()) as unknown }
      }
      const poll = {
        pollCreationMessage: {
          name: "Lunch?",
          options: [{ optionName: "yes" }, { optionName: "no" }],
          selectableOptionsCount: 1
        }
      }
      const card = { contactMessage: { displayName: "Ada", vcard: "BEGIN:VCARD\nFN:Ada\nEND:VCARD" } }
      const delivered = [
        await call("POST", "/deliver", {
          to: `+${PHONE}`,
          from: `+${CONTACT}`,
          id: "3EB0POLL",
          message: poll
        }),
        await call("POST", "/deliver", {
          to: PHONE,
          from: CONTACT,
          id: "3EB0CARD",
          message: card,
          copies: 2
        }),
        await call("POST", "/deliver", {
          to: PHONE,
          from: CONTACT,
          id: "3EB0VOICE",
          encryption: "plaintext",
          media: {
            kind: "audio",
            base64: Buffer.from("ogg").toString("base64"),
            mimetype: "audio/ogg",
            ptt: true
          }
        })
      ]
      expect(delivered.map((each) => each.status)).toEqual([200, 200, 200])
      expect(delivered[0]!.body).toEqual({ id: "3EB0POLL", devices: 1, queued: false })
      await eventually(
        () =>
          upserts.filter(({ message }) =>
            ["3EB0POLL", "3EB0CARD", "3EB0VOICE"].includes(message.key.id ?? "")
          ).length === 4
      )
      const byId = (id: string) =>
        upserts.filter(({ message }) => message.key.id === id).map(({ message }) => message.message)
      expect(byId("3EB0POLL")[0]?.pollCreationMessage).toMatchObject({ name: "Lunch?" })
      expect(byId("3EB0CARD").map((message) => message?.contactMessage?.displayName)).toEqual(["Ada", "Ada"])
      expect(byId("3EB0VOICE")[0]?.audioMessage).toMatchObject({ ptt: true, mimetype: "audio/ogg" })
      // The card's second copy follows the first's receipt, which may come before or after the voice note.
      expect(stanzas.map((stanza) => `${stanza.id} ${stanza.payload}`).sort()).toEqual([
        "3EB0CARD pkmsg",
        "3EB0CARD pkmsg",
        "3EB0POLL pkmsg",
        "3EB0VOICE plaintext"
      ])

      expect(
        await call("POST", "/receipts", { phone_number: CONTACT, played: "drop", read: { delay_ms: 10 } })
      ).toEqual({ status: 200, body: { phone_number: CONTACT } })
      const sent = await client.socket.sendMessage(CONTACT_JID, { text: "ask me again" })
      const id = sent!.key.id!
      await eventually(() => sim.received(CONTACT).length === 1)
      expect(await call("POST", "/retry-receipt", { phone_number: `+${CONTACT}`, id })).toEqual({
        status: 200,
        body: { id, to: `${PHONE}:1@s.whatsapp.net`, count: 1, acked: false, answered: false }
      })
      await eventually(() => sim.retryRequests(CONTACT)[0]?.acked === true)
      expect(await call("GET", `/accounts/${CONTACT}/retry-receipts`)).toEqual({
        status: 200,
        body: [{ id, to: `${PHONE}:1@s.whatsapp.net`, count: 1, acked: true, answered: false }]
      })
      expect(await call("GET", `/accounts/${CONTACT}/received`)).toMatchObject({
        status: 200,
        body: [{ id, text: "ask me again", resend: false }]
      })

      const refusals = [
        await call("POST", "/deliver", { to: PHONE, from: CONTACT, message: card, encryption: "rot13" }),
        await call("POST", "/deliver", { to: PHONE, from: CONTACT, message: card, copies: 0 }),
        await call("POST", "/deliver", {
          to: PHONE,
          from: CONTACT,
          media: { kind: "audio", base64: "AAAA", mimetype: "audio/ogg", ptt: "yes" }
        }),
        await call("POST", "/retry-receipt", { phone_number: CONTACT, id, count: 0 }),
        await call("POST", "/receipts", { phone_number: CONTACT, played: "sometimes" }),
        await call("POST", "/deliver", { to: "15550009999", from: CONTACT, message: card }),
        await call("POST", "/retry-receipt", { phone_number: CONTACT, id: "3EB0NEVERSENT" })
      ]
      expect(refusals.map((each) => each.status)).toEqual([400, 400, 400, 400, 400, 409, 409])
      expect(refusals[5]!.body).toEqual({ error: "15550009999 has no linked device to deliver to" })
    } finally {
      await control.close()
    }
  })
})
