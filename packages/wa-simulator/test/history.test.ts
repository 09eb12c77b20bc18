import type { BinaryNode, WAMessage } from "@whiskeysockets/baileys"
import { describe, expect, it } from "vitest"
import type { WebSocket } from "ws"
import { startControlServer, type Simulator } from "../src/index.ts"
import { eventually, statusCodeOf } from "./baileys-client.ts"
import { useHarness } from "./harness.ts"

const PHONE = "15558889999"
const CONTACT = "15558880000"
const CONTACT_JID = `${CONTACT}@s.whatsapp.net`

const ping = (): BinaryNode => ({
  tag: "iq",
  attrs: { to: "s.whatsapp.net", type: "get", xmlns: "w:p" },
  content: [{ tag: "ping", attrs: {} }]
})

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The recorded connection of `PHONE` that logged in `index`-th. */
const recordOf = (sim: Simulator, index: number) => sim.connectionHistory(PHONE)[index]

const closedCount = (sim: Simulator) =>
  sim.connectionHistory(PHONE).filter((record) => record.closedAt !== undefined).length

describe("each account's connection history and the overlaps in it", () => {
  const { simulator, baileys, pair } = useHarness()

  it("two sockets of one device opened at once are one overlap, as long as both were live", async () => {
    const sim = await simulator()
    const auth = await pair(sim, PHONE)
    const first = baileys(sim, auth)
    await first.waitFor((update) => update.connection === "open")
    const second = baileys(sim, auth)
    await second.waitFor((update) => update.connection === "open")
    const bothOpen = sim.now()
    await pause(300)

    expect(sim.overlaps(PHONE)).toEqual([
      expect.objectContaining({ sameDevice: true, ongoing: true, from: recordOf(sim, 1)!.loggedInAt })
    ])
    const beforeEnd = sim.now()
    second.socket.end(undefined)
    await eventually(() => closedCount(sim) === 1)

    // The QR pairing socket never got <success>: only the two logins are recorded, in login order.
    const [older, newer] = sim.connectionHistory(PHONE)
    expect(sim.connectionHistory(PHONE)).toHaveLength(2)
    expect(older).toMatchObject({ jid: `${PHONE}:1@s.whatsapp.net`, deviceId: 1, closedAt: undefined })
    expect(newer).toMatchObject({ jid: `${PHONE}:1@s.whatsapp.net`, closure: { by: "client" } })
    const overlaps = sim.overlaps(PHONE)
    expect(overlaps).toHaveLength(1)
    const [overlap] = overlaps
    expect(overlap).toMatchObject({
      phoneNumber: PHONE,
      sameDevice: true,
      ongoing: false,
      from: newer!.loggedInAt,
      until: newer!.closedAt,
      durationMs: newer!.closedAt! - newer!.loggedInAt,
      older: { connectionId: older!.connectionId },
      newer: { connectionId: newer!.connectionId }
    })
    expect(overlap!.durationMs).toBeGreaterThanOrEqual(beforeEnd - bothOpen)
    expect(sim.overlaps()).toEqual(overlaps)
  })

  it("two linked devices of one account live at once overlap too, as different devices, even in replace mode", async () => {
    const sim = await simulator({ replaceConnections: true })
    const one = await pair(sim, PHONE)
    const two = await pair(sim, PHONE)
    const first = baileys(sim, one)
    await first.waitFor((update) => update.connection === "open")
    const second = baileys(sim, two)
    await second.waitFor((update) => update.connection === "open")

    expect(sim.connectionHistory(PHONE).map((record) => record.deviceId)).toEqual([1, 2])
    expect(sim.overlaps(PHONE)).toEqual([expect.objectContaining({ sameDevice: false, ongoing: true })])
    expect(first.updates.some((update) => update.connection === "close")).toBe(false)
    expect(sim.connectionsOf(PHONE)).toHaveLength(2)
  })

  it("connections one after the other do not overlap", async () => {
    const sim = await simulator()
    const auth = await pair(sim, PHONE)
    const first = baileys(sim, auth)
    await first.waitFor((update) => update.connection === "open")
    first.socket.end(undefined)
    await eventually(() => closedCount(sim) === 1)
    const again = baileys(sim, auth)
    await again.waitFor((update) => update.connection === "open")

    const [older, newer] = sim.connectionHistory(PHONE)
    expect(older).toMatchObject({ closure: { by: "client" }, endedAt: undefined })
    expect(older!.wsCloseCode).toEqual(expect.any(Number))
    expect(older!.closedAt).toBeLessThanOrEqual(newer!.loggedInAt)
    expect(newer!.closedAt).toBeUndefined()
    expect(sim.overlaps(PHONE)).toEqual([])
    expect(sim.overlaps()).toEqual([])
  })

  it("what a connection sends after login is counted by kind, with the time it arrived", async () => {
    const sim = await simulator()
    const auth = await pair(sim, PHONE)
    const client = baileys(sim, auth, { shouldSyncHistoryMessage: () => false })
    await client.waitFor((update) => update.connection === "open")
    const upserts: WAMessage[] = []
    client.socket.ev.on("messages.upsert", ({ messages }) => upserts.push(...messages))
    // Let the opening queries settle, then count from a clean slate.
    await pause(300)
    expect(sim.clearHistory(PHONE)).toBe(0)
    const start = sim.now()
    expect(recordOf(sim, 0)!.sent).toEqual({ message: 0, receipt: 0, iq: 0, presence: 0, other: 0 })

    const sent = await client.socket.sendMessage(CONTACT_JID, { text: "counted" })
    await eventually(() => sim.received(CONTACT).length === 1)
    await client.socket.query(ping())
    // Baileys sends "available" only with a name; "composing" goes out as <chatstate>, a presence too.
    auth.creds.me = { ...auth.creds.me!, name: "Counted" }
    await client.socket.sendPresenceUpdate("available")
    await client.socket.sendPresenceUpdate("composing", CONTACT_JID)
    const { id } = await sim.deliver(PHONE, { from: CONTACT, message: { conversation: "read me" } })
    await eventually(() => upserts.some((message) => message.key.id === id))
    await client.socket.readMessages([upserts.find((message) => message.key.id === id)!.key])
    await eventually(() => sim.receiptsFrom(PHONE).filter((receipt) => receipt.id === id).length === 2)
    await eventually(() => recordOf(sim, 0)!.sent.presence === 2)

    const record = recordOf(sim, 0)!
    expect(record.sent).toMatchObject({ message: 1, receipt: 2, presence: 2 })
    const of = (kind: string) => record.stanzas.filter((stanza) => stanza.kind === kind)
    expect(of("message")).toEqual([
      expect.objectContaining({ tag: "message", attrs: expect.objectContaining({ id: sent!.key.id }) })
    ])
    // Online since its "available", Baileys sends a plain delivery receipt (no type), then the read.
    expect(of("receipt").map((stanza) => [stanza.attrs.id, stanza.attrs.type])).toEqual([
      [id, undefined],
      [id, "read"]
    ])
    expect(of("presence").map((stanza) => stanza.tag)).toEqual(["presence", "chatstate"])
    // The acks Baileys sends for the receipts the contact's phone sent back.
    expect(of("other").map((stanza) => stanza.tag)).toContain("ack")
    expect(of("iq").some((stanza) => stanza.attrs.xmlns === "w:p")).toBe(true)
    expect(record.sent.iq).toBe(of("iq").length)
    const times = record.stanzas.map((stanza) => stanza.at)
    expect(times).toEqual([...times].sort((a, b) => a - b))
    expect(times[0]).toBeGreaterThanOrEqual(start)
    expect(times.at(-1)).toBeLessThanOrEqual(sim.now())
  })

  it("in replace mode a second login of the same device closes the older connection with 440 (conflict), and the newer one stays", async () => {
    const sim = await simulator({ replaceConnections: true })
    const auth = await pair(sim, PHONE)
    const first = baileys(sim, auth)
    await first.waitFor((update) => update.connection === "open")
    const second = baileys(sim, auth)
    await second.waitFor((update) => update.connection === "open")

    const closed = await first.waitFor((update) => update.connection === "close")
    expect(statusCodeOf(closed)).toBe(440)
    expect(closed.lastDisconnect?.error?.message).toBe("Stream Errored (conflict)")
    await eventually(() => closedCount(sim) === 1)
    const [older, newer] = sim.connectionHistory(PHONE)
    expect(older).toMatchObject({ closure: { by: "replaced", replacedBy: newer!.connectionId } })
    expect(older!.endedAt).toBeGreaterThanOrEqual(newer!.loggedInAt - 50)
    expect(newer!.closedAt).toBeUndefined()
    expect(sim.connectionsOf(PHONE).map((connection) => connection.id)).toEqual([newer!.connectionId])
    expect(second.updates.some((update) => update.connection === "close")).toBe(false)
    // Both sockets were live until Baileys closed the replaced one: a brief overlap, and it is reported.
    const [overlap] = sim.overlaps(PHONE)
    expect(overlap).toMatchObject({
      sameDevice: true,
      ongoing: false,
      durationMs: older!.closedAt! - newer!.loggedInAt,
      older: { connectionId: older!.connectionId, closure: { by: "replaced" } }
    })
    // Baileys closed it on reading the conflict, before the server's own 2 s grace ran out.
    expect(overlap!.durationMs).toBeLessThan(2_000)
  })

  it("in replace mode a replaced connection that never reads the conflict is cut after the server's 2 s grace, and what it sent meanwhile is recorded", async () => {
    const sim = await simulator({ replaceConnections: true })
    const auth = await pair(sim, PHONE)
    const stale = baileys(sim, auth)
    await stale.waitFor((update) => update.connection === "open")
    // It stops reading, as a frozen process does: the conflict the server sends stays unread.
    const staleSocket = (stale.socket.ws as unknown as { socket: WebSocket }).socket
    staleSocket.pause()
    try {
      const current = baileys(sim, auth)
      await current.waitFor((update) => update.connection === "open")
      await eventually(() => recordOf(sim, 0)!.endedAt !== undefined)
      await stale.socket.sendNode({ tag: "presence", attrs: { type: "available", name: "stale" } })
      await eventually(() => closedCount(sim) === 1)

      const [older, newer] = sim.connectionHistory(PHONE)
      expect(older).toMatchObject({
        closure: { by: "replaced", replacedBy: newer!.connectionId },
        wsCloseCode: 1006
      })
      expect(older!.closedAt! - older!.endedAt!).toBeGreaterThanOrEqual(1_950)
      expect(sim.connectionsOf(PHONE).map((connection) => connection.id)).toEqual([newer!.connectionId])
      const [overlap] = sim.overlaps(PHONE)
      expect(overlap!.durationMs).toBeGreaterThanOrEqual(1_950)
      expect(overlap!.older.sent).toMatchObject({ presence: 1, message: 0, receipt: 0 })
      expect(overlap!.older.stanzas).toContainEqual(
        expect.objectContaining({ tag: "presence", attrs: { type: "available", name: "stale" } })
      )
      expect(stale.updates.some((update) => update.connection === "close")).toBe(false)
    } finally {
      // Reading again, as the process thawed, it finds the conflict the server sent before cutting it.
      staleSocket.resume()
    }
    expect(statusCodeOf(await stale.waitFor((update) => update.connection === "close"))).toBe(440)
  })

  it("a connection cut from the client's side without a close frame, as a killed process's, is closed by the client with 1006", async () => {
    const sim = await simulator()
    const auth = await pair(sim, PHONE)
    const client = baileys(sim, auth)
    await client.waitFor((update) => update.connection === "open")
    ;(client.socket.ws as unknown as { socket: WebSocket }).socket.terminate()
    await eventually(() => closedCount(sim) === 1)
    expect(recordOf(sim, 0)).toMatchObject({
      closure: { by: "client" },
      endedAt: undefined,
      wsCloseCode: 1006
    })
  })

  it("an injected fault is recorded as the server's, with the fault", async () => {
    const sim = await simulator()
    const auth = await pair(sim, PHONE)
    const client = baileys(sim, auth)
    await client.waitFor((update) => update.connection === "open")
    sim.inject(PHONE, { kind: "stream-error", code: 503 })
    await client.waitFor((update) => update.connection === "close")
    await eventually(() => closedCount(sim) === 1)
    expect(recordOf(sim, 0)).toMatchObject({
      closure: { by: "fault", fault: { kind: "stream-error", code: 503 } },
      endedAt: expect.any(Number)
    })
    expect(recordOf(sim, 0)!.endedAt).toBeLessThanOrEqual(recordOf(sim, 0)!.closedAt!)
  })

  it("the control API answers the same history and overlaps, clears the history, and turns replace mode on", async () => {
    const sim = await simulator()
    const control = await startControlServer(sim)
    try {
      const call = async (method: string, path: string, body?: unknown) => {
        const response = await fetch(`${control.url}${path}`, {
          method,
          ...(body === undefined ? {} : { body: JSON.stringify(body) })
        })
        return { status: response.status, body: (await response.json()) as Record<string, any> }
      }
      const auth = await pair(sim, PHONE)
      const first = baileys(sim, auth)
      await first.waitFor((update) => update.connection === "open")
      const second = baileys(sim, auth)
      await second.waitFor((update) => update.connection === "open")
      second.socket.end(undefined)
      await eventually(() => closedCount(sim) === 1)
      first.socket.end(undefined)
      await eventually(() => closedCount(sim) === 2)

      const history = await call("GET", `/accounts/${PHONE}/history`)
      expect(history.status).toBe(200)
      expect(history.body.now).toBeGreaterThanOrEqual(recordOf(sim, 1)!.closedAt!)
      expect(history.body.connections).toEqual(
        sim.connectionHistory(PHONE).map((record) => ({
          connection_id: record.connectionId,
          phone_number: PHONE,
          device_id: 1,
          jid: record.jid,
          logged_in_at: record.loggedInAt,
          ended_at: null,
          closed_at: record.closedAt,
          closure: { by: "client" },
          ws_close_code: record.wsCloseCode,
          sent: record.sent,
          stanzas: record.stanzas.map((stanza) => ({ ...stanza }))
        }))
      )
      expect((await call("GET", "/history")).body.connections).toEqual(history.body.connections)
      expect((await call("GET", "/accounts/15550000000/history")).body.connections).toEqual([])

      const [overlap] = sim.overlaps(PHONE)
      const overlaps = await call("GET", "/overlaps")
      expect(overlaps.status).toBe(200)
      expect(overlaps.body.overlaps).toEqual([
        expect.objectContaining({
          phone_number: PHONE,
          same_device: true,
          ongoing: false,
          from: overlap!.from,
          until: overlap!.until,
          duration_ms: overlap!.durationMs,
          older: expect.objectContaining({
            connection_id: overlap!.older.connectionId,
            sent: overlap!.older.sent,
            closure: { by: "client" }
          }),
          newer: expect.objectContaining({
            connection_id: overlap!.newer.connectionId,
            sent: overlap!.newer.sent
          })
        })
      ])
      expect((await call("GET", `/accounts/${PHONE}/overlaps`)).body.overlaps).toEqual(overlaps.body.overlaps)

      expect(await call("POST", "/history/clear", { phone_number: "nope" })).toMatchObject({ status: 400 })
      expect(await call("POST", "/history/clear", { phone_number: PHONE })).toEqual({
        status: 200,
        body: { forgotten: 2 }
      })
      expect((await call("GET", "/history")).body.connections).toEqual([])

      expect(await call("POST", "/replace-connections", { enabled: "yes" })).toMatchObject({ status: 400 })
      expect(await call("POST", "/replace-connections", { enabled: true })).toEqual({
        status: 200,
        body: { enabled: true }
      })
      const third = baileys(sim, auth)
      await third.waitFor((update) => update.connection === "open")
      const fourth = baileys(sim, auth)
      await fourth.waitFor((update) => update.connection === "open")
      expect(statusCodeOf(await third.waitFor((update) => update.connection === "close"))).toBe(440)
      await eventually(() => closedCount(sim) === 1)
      const replaced = (await call("GET", `/accounts/${PHONE}/history`)).body.connections
      expect(replaced).toEqual([
        expect.objectContaining({
          closure: { by: "replaced", replaced_by: replaced[1].connection_id },
          ended_at: expect.any(Number)
        }),
        expect.objectContaining({ closed_at: null, closure: null, ws_close_code: null })
      ])
    } finally {
      await control.close()
    }
  })
})
