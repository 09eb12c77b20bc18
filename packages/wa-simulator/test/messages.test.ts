import { proto, type WAMessage, type WAMessageUpdate } from "@whiskeysockets/baileys"
import { describe, expect, it } from "vitest"
import { eventually, recordMessageStanzas } from "./baileys-client.ts"
import { useHarness } from "./harness.ts"

const PHONE = "15550001111"
const CONTACT = "15550002222"
const CONTACT_JID = `${CONTACT}@s.whatsapp.net`

describe("messages between a linked device and other phone numbers", () => {
  const { simulator, baileys, pair } = useHarness()

  const openDevice = async () => {
    const sim = await simulator()
    const auth = await pair(sim, PHONE)
    // As the gateway does: no history sync, so events are not held back for 20 s waiting for one.
    const client = baileys(sim, auth, { shouldSyncHistoryMessage: () => false })
    await client.waitFor((update) => update.connection === "open")
    const updates: WAMessageUpdate[] = []
    client.socket.ev.on("messages.update", (batch) => updates.push(...batch))
    return { sim, auth, client, updates }
  }

  const statusesOf = (updates: WAMessageUpdate[], id: string) =>
    updates.filter((update) => update.key.id === id).map((update) => update.update.status)

  it("a text sent by Baileys is acked, delivered and read, and the simulated phone decrypts its text", async () => {
    const { sim, client, updates } = await openDevice()
    // Spaced out, as a phone's receipts are: receipts that arrive while Baileys still buffers the sent
    // message's own upsert are folded into it (status READ on the upsert) instead of messages.update.
    sim.setReceipts(CONTACT, { delivered: { delayMs: 300 }, read: { delayMs: 300 } })
    const sent = await client.socket.sendMessage(CONTACT_JID, { text: "hello from the gateway" })
    const id = sent!.key.id!
    await eventually(() => statusesOf(updates, id).includes(proto.WebMessageInfo.Status.READ))
    expect(statusesOf(updates, id)).toEqual([
      proto.WebMessageInfo.Status.DELIVERY_ACK,
      proto.WebMessageInfo.Status.READ
    ])
    await eventually(() => sim.received(CONTACT).length === 1)
    expect(sim.received(CONTACT)[0]).toMatchObject({ id, from: PHONE, fromDevice: 1 })
    // rc14 sends a plain text as extendedTextMessage
    expect(sim.received(CONTACT)[0]!.message.extendedTextMessage?.text).toBe("hello from the gateway")

    const second = await client.socket.sendMessage(CONTACT_JID, { text: "and a second one" })
    await eventually(() => sim.received(CONTACT).length === 2)
    expect(sim.received(CONTACT)[1]).toMatchObject({ id: second!.key.id })
    expect(sim.received(CONTACT)[1]!.message.extendedTextMessage?.text).toBe("and a second one")
  })

  it("an error ack reaches Baileys as messages.update with status ERROR and the code, and nothing is delivered", async () => {
    const { sim, client, updates } = await openDevice()
    // Later than the sent message's own upsert, which would otherwise absorb the status.
    sim.setReceipts(CONTACT, { ackError: 479, ack: { delayMs: 300 } })
    const sent = await client.socket.sendMessage(CONTACT_JID, { text: "refused" })
    const id = sent!.key.id!
    await eventually(() => updates.some((update) => update.key.id === id))
    expect(updates.filter((update) => update.key.id === id)).toEqual([
      expect.objectContaining({
        update: { status: proto.WebMessageInfo.Status.ERROR, messageStubParameters: ["479"] }
      })
    ])
    expect(sim.received(CONTACT)).toHaveLength(0)
  })

  it("dropped receipts never reach Baileys; a delayed read still follows the delivery", async () => {
    const { sim, client, updates } = await openDevice()
    sim.setReceipts(CONTACT, { delivered: "drop", read: "drop" })
    const silent = await client.socket.sendMessage(CONTACT_JID, { text: "no receipts" })
    await eventually(() => sim.received(CONTACT).length === 1)
    sim.setReceipts(CONTACT, { delivered: { delayMs: 200 }, read: { delayMs: 200 } })
    const later = await client.socket.sendMessage(CONTACT_JID, { text: "slow receipts" })
    await eventually(() => statusesOf(updates, later!.key.id!).includes(proto.WebMessageInfo.Status.READ))
    expect(statusesOf(updates, silent!.key.id!)).toEqual([])
    expect(sim.received(CONTACT).map((each) => each.message.extendedTextMessage?.text)).toEqual([
      "no receipts",
      "slow receipts"
    ])
  })

  it("an inbound text from another phone reaches messages.upsert as notify, and its receipts reach the simulator", async () => {
    const { sim, client } = await openDevice()
    const upserts: Array<{ type: string; messages: WAMessage[] }> = []
    client.socket.ev.on("messages.upsert", (upsert) => upserts.push(upsert))
    const { id, devices } = await sim.deliver(PHONE, { from: CONTACT, message: { conversation: "hi there" } })
    expect(devices).toBe(1)
    await eventually(() => upserts.some((upsert) => upsert.messages.some((message) => message.key.id === id)))
    const upsert = upserts.find((each) => each.messages.some((message) => message.key.id === id))!
    expect(upsert.type).toBe("notify")
    expect(upsert.messages[0]).toMatchObject({
      key: { remoteJid: CONTACT_JID, fromMe: false, id },
      message: { conversation: "hi there" }
    })
    // Not marked online, Baileys acknowledges with an "inactive" receipt; reading it sends "read".
    await eventually(() => sim.receiptsFrom(PHONE).some((receipt) => receipt.id === id))
    await client.socket.readMessages([upsert.messages[0]!.key])
    await eventually(() =>
      sim.receiptsFrom(PHONE).some((receipt) => receipt.id === id && receipt.type === "read")
    )
    expect(sim.receiptsFrom(PHONE).filter((receipt) => receipt.id === id)).toEqual([
      expect.objectContaining({ to: CONTACT_JID, type: "inactive" }),
      expect.objectContaining({ to: CONTACT_JID, type: "read" })
    ])
  })

  it("an inbound reply, reaction, location and sticker each reach messages.upsert as notify", async () => {
    const { sim, client } = await openDevice()
    const notified: WAMessage[] = []
    client.socket.ev.on("messages.upsert", ({ type, messages }) => {
      if (type === "notify") notified.push(...messages)
    })
    const sent = await client.socket.sendMessage(CONTACT_JID, { text: "question" })
    const ours = sent!.key.id!
    const deliveries: Array<proto.IMessage> = [
      {
        extendedTextMessage: {
          text: "answer",
          contextInfo: {
            stanzaId: ours,
            participant: `${PHONE}@s.whatsapp.net`,
            quotedMessage: { conversation: "question" }
          }
        }
      },
      {
        reactionMessage: {
          key: { remoteJid: CONTACT_JID, fromMe: true, id: ours },
          text: "👍",
          senderTimestampMs: Date.now()
        }
      },
      { locationMessage: { degreesLatitude: 52.52, degreesLongitude: 13.405, name: "Berlin" } },
      {
        stickerMessage: {
          url: "https://mmg.whatsapp.net/sticker",
          mimetype: "image/webp",
          fileSha256: Buffer.alloc(32, 1),
          fileEncSha256: Buffer.alloc(32, 2),
          mediaKey: Buffer.alloc(32, 3),
          fileLength: 1024,
          directPath: "/sticker"
        }
      }
    ]
    const ids: string[] = []
    for (const message of deliveries) ids.push((await sim.deliver(PHONE, { from: CONTACT, message })).id)
    await eventually(() => ids.every((id) => notified.some((message) => message.key.id === id)))
    const [reply, reaction, location, sticker] = ids.map((id) =>
      notified.find((message) => message.key.id === id)!
    )
    expect(reply!.message?.extendedTextMessage?.contextInfo?.stanzaId).toBe(ours)
    expect(reaction!.message?.reactionMessage).toMatchObject({ text: "👍", key: { id: ours } })
    expect(location!.message?.locationMessage).toMatchObject({ degreesLatitude: 52.52, name: "Berlin" })
    expect(sticker!.message?.stickerMessage?.mimetype).toBe("image/webp")
    for (const message of [reply, reaction, location, sticker]) {
      expect(message!.key).toMatchObject({ remoteJid: CONTACT_JID, fromMe: false })
    }
  })

  it("a message delivered while no device is online arrives at the next login, as an offline append", async () => {
    const sim = await simulator()
    const auth = await pair(sim, PHONE)
    const queued = await sim.deliver(PHONE, {
      from: CONTACT,
      message: { conversation: "while you were away" }
    })
    expect(queued).toMatchObject({ devices: 0, queued: true })
    const client = baileys(sim, auth, { shouldSyncHistoryMessage: () => false })
    const stanzas = recordMessageStanzas(client.socket)
    const upserts: Array<{ type: string; messages: WAMessage[] }> = []
    client.socket.ev.on("messages.upsert", (upsert) => upserts.push(upsert))
    await eventually(() =>
      upserts.some((upsert) => upsert.messages.some((message) => message.key.id === queued.id))
    )
    // Encrypted before the device ever logged in: with its signed pre-key alone, none uploaded yet.
    expect(stanzas).toEqual([expect.objectContaining({ id: queued.id, payload: "pkmsg", offline: true })])
    const upsert = upserts.find((each) => each.messages.some((message) => message.key.id === queued.id))!
    expect(upsert.type).toBe("append")
    expect(upsert.messages[0]?.message?.conversation).toBe("while you were away")
    expect(await sim.deliver(PHONE, { from: CONTACT, message: { conversation: "now" } })).toMatchObject({
      devices: 1,
      queued: false
    })
  })

  it("a message between two linked devices is relayed as ciphertext, and the recipient's Baileys decrypts it", async () => {
    const sim = await simulator()
    const senderAuth = await pair(sim, PHONE)
    const recipientAuth = await pair(sim, CONTACT)
    const sender = baileys(sim, senderAuth, { shouldSyncHistoryMessage: () => false })
    const recipient = baileys(sim, recipientAuth, { shouldSyncHistoryMessage: () => false })
    await sender.waitFor((update) => update.connection === "open")
    await recipient.waitFor((update) => update.connection === "open")
    await eventually(() => (sim.account(CONTACT)?.devices.get(1)?.preKeys.size ?? 0) > 0)
    const notified: WAMessage[] = []
    recipient.socket.ev.on("messages.upsert", ({ type, messages }) => {
      if (type === "notify") notified.push(...messages)
    })
    const sent = await sender.socket.sendMessage(CONTACT_JID, { text: "device to device" })
    await eventually(() => notified.some((message) => message.key.id === sent!.key.id))
    const arrived = notified.find((message) => message.key.id === sent!.key.id)!
    expect(arrived.key).toMatchObject({ remoteJid: `${PHONE}@s.whatsapp.net`, fromMe: false })
    expect(arrived.message?.extendedTextMessage?.text).toBe("device to device")
    await eventually(() => sim.received(CONTACT).length === 1)
  })
})
