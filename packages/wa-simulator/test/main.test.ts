import { spawn, type ChildProcess } from "node:child_process"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { afterEach, describe, expect, it } from "vitest"
import type { WAMessage, WAMessageUpdate } from "@whiskeysockets/baileys"
import {
  connectBaileys,
  eventually,
  makeMemoryAuthState,
  pollUntil,
  statusCodeOf,
  type MemoryAuthState
} from "./baileys-client.ts"

const MAIN = fileURLToPath(new URL("../src/main.ts", import.meta.url))
const PHONE = "15554445555"

interface Started {
  readonly url: string
  readonly control_url: string
  readonly media_host: string
}

describe("the standalone simulator (main.ts) and its HTTP control API", () => {
  const cleanups: Array<() => Promise<void> | void> = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })

  /** Starts main.ts in its own Node process and reads the URLs it prints. */
  const startProcess = async (env: Record<string, string> = {}): Promise<Started> => {
    const child: ChildProcess = spawn(process.execPath, [MAIN], {
      env: { ...process.env, WA_SIM_PORT: "0", WA_SIM_CONTROL_PORT: "0", ...env },
      stdio: ["ignore", "pipe", "inherit"]
    })
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
    cleanups.push(async () => {
      child.kill("SIGTERM")
      await exited
    })
    const lines = createInterface({ input: child.stdout! })
    const [line] = (await Promise.race([
      lines[Symbol.asyncIterator]()
        .next()
        .then((next) => [next.value as string]),
      exited.then(() => [undefined])
    ])) as [string | undefined]
    if (!line) throw new Error("main.ts exited before printing its URLs")
    return JSON.parse(line) as Started
  }

  const baileys = (url: string, auth: MemoryAuthState, options?: Parameters<typeof connectBaileys>[2]) => {
    const client = connectBaileys(url, auth, options)
    cleanups.push(() => client.socket.end(undefined))
    return client
  }

  const call = async (started: Started, method: string, path: string, body?: unknown) => {
    const response = await fetch(`${started.control_url}${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { "content-type": "application/json" } })
    })
    return { status: response.status, body: (await response.json()) as Record<string, unknown> }
  }

  it("prints its URLs as one JSON line, and a QR scanned through the API links real Baileys", async () => {
    const started = await startProcess()
    expect(started.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/)
    expect(started.control_url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(started.media_host).toMatch(/^127\.0\.0\.1:\d+$/)

    const auth = makeMemoryAuthState()
    const first = baileys(started.url, auth)
    const { qr } = await first.waitFor((update) => typeof update.qr === "string")
    // phone numbers as the gateway writes them (E.164, with +), or their digits alone
    const scanned = await call(started, "POST", "/scan", { qr, phone_number: `+${PHONE}` })
    expect(scanned).toMatchObject({ status: 200, body: { jid: `${PHONE}:1@s.whatsapp.net`, deviceId: 1 } })
    const restarted = await first.waitFor((update) => update.connection === "close")
    expect(statusCodeOf(restarted)).toBe(515)

    const second = baileys(started.url, auth)
    await second.waitFor((update) => update.connection === "open")
    expect(auth.creds.me?.id).toBe(`${PHONE}:1@s.whatsapp.net`)
    for (const phone of [PHONE, `+${PHONE}`, `%2B${PHONE}`]) {
      const connections = await call(started, "GET", `/accounts/${phone}/connections`)
      expect(connections.status, phone).toBe(200)
      expect(connections.body).toEqual([expect.objectContaining({ jid: `${PHONE}:1@s.whatsapp.net` })])
    }

    expect(
      await call(started, "POST", "/inject", {
        phone_number: PHONE,
        fault: { kind: "stream-error", code: 440 }
      })
    ).toEqual({ status: 200, body: { ended: 1 } })
    const replaced = await second.waitFor((update) => update.connection === "close")
    expect(statusCodeOf(replaced)).toBe(440)

    await call(started, "POST", "/login-fault", { fault: { kind: "failure", reason: 405 } })
    const refused = baileys(started.url, auth)
    expect(statusCodeOf(await refused.waitFor((update) => update.connection === "close"))).toBe(405)
    await call(started, "POST", "/login-fault", { fault: null })
    await baileys(started.url, auth).waitFor((update) => update.connection === "open")
  })

  it("started with WA_SIM_REPLACE_CONNECTIONS=1, a second login of a device replaces the first with 440, as the history and overlaps show", async () => {
    const started = await startProcess({ WA_SIM_REPLACE_CONNECTIONS: "1" })
    const auth = makeMemoryAuthState()
    const pairing = baileys(started.url, auth)
    const { qr } = await pairing.waitFor((update) => typeof update.qr === "string")
    await call(started, "POST", "/scan", { qr, phone_number: PHONE })
    await pairing.waitFor((update) => update.connection === "close")
    const first = baileys(started.url, auth)
    await first.waitFor((update) => update.connection === "open")
    const second = baileys(started.url, auth)
    await second.waitFor((update) => update.connection === "open")
    expect(statusCodeOf(await first.waitFor((update) => update.connection === "close"))).toBe(440)

    type Connections = Array<{ connection_id: number; closed_at: number | null; closure: unknown }>
    const history = async () =>
      (await call(started, "GET", `/accounts/${PHONE}/history`)).body.connections as Connections
    const connections = await pollUntil(
      "the replaced connection to close",
      history,
      (seen) => seen[0]?.closed_at !== null
    )
    const [older, newer] = connections
    expect(connections).toHaveLength(2)
    expect(older!.closure).toEqual({ by: "replaced", replaced_by: newer!.connection_id })
    expect(newer!.closed_at).toBeNull()
    const overlaps = await call(started, "GET", "/overlaps")
    expect(overlaps.body.overlaps).toEqual([
      expect.objectContaining({
        phone_number: PHONE,
        same_device: true,
        ongoing: false,
        older: expect.objectContaining({ connection_id: older!.connection_id }),
        newer: expect.objectContaining({ connection_id: newer!.connection_id })
      })
    ])
  })

  it("a pairing code typed through the API links real Baileys", async () => {
    const started = await startProcess()
    const auth = makeMemoryAuthState()
    const first = baileys(started.url, auth)
    await first.waitFor((update) => typeof update.qr === "string")
    const code = await first.socket.requestPairingCode(PHONE)
    const entered = await call(started, "POST", "/pairing-code", { phone_number: `+${PHONE}`, code })
    expect(entered).toMatchObject({ status: 200, body: { jid: `${PHONE}:1@s.whatsapp.net` } })
    expect(statusCodeOf(await first.waitFor((update) => update.connection === "close"))).toBe(515)
    await baileys(started.url, auth).waitFor((update) => update.connection === "open")
    expect(auth.creds.me?.id).toBe(`${PHONE}:1@s.whatsapp.net`)
  })

  it("receipts set, messages read back and inbound messages delivered through the API", async () => {
    const started = await startProcess()
    const contact = "15556667777"
    const auth = makeMemoryAuthState()
    const first = baileys(started.url, auth)
    const { qr } = await first.waitFor((update) => typeof update.qr === "string")
    await call(started, "POST", "/scan", { qr, phone_number: PHONE })
    await first.waitFor((update) => update.connection === "close")
    const client = baileys(started.url, auth, { shouldSyncHistoryMessage: () => false })
    await client.waitFor((update) => update.connection === "open")
    const updates: WAMessageUpdate[] = []
    client.socket.ev.on("messages.update", (batch) => updates.push(...batch))
    const upserts: WAMessage[] = []
    client.socket.ev.on("messages.upsert", ({ type, messages }) => {
      if (type === "notify") upserts.push(...messages)
    })

    expect(
      await call(started, "POST", "/receipts", {
        phone_number: contact,
        delivered: "drop",
        read: "sometimes"
      })
    ).toMatchObject({ status: 400 })
    expect(
      await call(started, "POST", "/receipts", {
        phone_number: contact,
        ack: { delay_ms: 300 },
        ack_error: 479
      })
    ).toEqual({ status: 200, body: { phone_number: contact } })
    const refused = await client.socket.sendMessage(`${contact}@s.whatsapp.net`, { text: "refused" })
    await eventually(() => updates.some((update) => update.key.id === refused!.key.id))
    expect(updates[0]?.update).toMatchObject({ messageStubParameters: ["479"] })

    await call(started, "POST", "/receipts", { phone_number: contact })
    const sent = await client.socket.sendMessage(`${contact}@s.whatsapp.net`, { text: "through the API" })
    const receivedByContact = async () =>
      (await call(started, "GET", `/accounts/${contact}/received`)).body as unknown as unknown[]
    const received = await pollUntil(
      "the contact to receive the message",
      receivedByContact,
      (seen) => seen.length > 0,
      {
        pauseMs: 50
      }
    )
    expect(received).toEqual([
      expect.objectContaining({ id: sent!.key.id, from: PHONE, from_device: 1, text: "through the API" })
    ])

    expect(
      await call(started, "POST", "/deliver", {
        to: PHONE,
        from: contact,
        id: "3EB0FROMAPI",
        message: { extendedTextMessage: { text: "inbound through the API" } }
      })
    ).toEqual({ status: 200, body: { id: "3EB0FROMAPI", devices: 1, queued: false } })
    await eventually(() => upserts.some((message) => message.key.id === "3EB0FROMAPI"))
    expect(
      upserts.find((message) => message.key.id === "3EB0FROMAPI")?.message?.extendedTextMessage?.text
    ).toBe("inbound through the API")
  })

  it("stalls on request, and refuses malformed requests with 400, unknown routes with 404, and what the phone cannot do with 409", async () => {
    const started = await startProcess()
    expect(
      await call(started, "POST", "/inject", { phone_number: PHONE, fault: { kind: "meteor" } })
    ).toMatchObject({
      status: 400
    })
    expect(await call(started, "POST", "/scan", { qr: "x,y,z,w", phone_number: "not digits" })).toMatchObject(
      {
        status: 400
      }
    )
    expect(await call(started, "POST", "/nowhere", {})).toMatchObject({ status: 404 })
    expect(await call(started, "POST", "/stall", { phone_number: PHONE, stalled: "yes" })).toMatchObject({
      status: 400
    })
    expect(await call(started, "POST", "/stall", { phone_number: PHONE, stalled: true })).toEqual({
      status: 200,
      body: { released: 0 }
    })
    expect(
      await call(started, "POST", "/scan", { qr: "ref,bm9pc2U=,aWQ=,YWR2", phone_number: PHONE })
    ).toMatchObject({
      status: 409,
      body: { error: expect.stringMatching(/no connected companion/) }
    })
  })
})
