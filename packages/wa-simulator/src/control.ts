import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { proto } from "@whiskeysockets/baileys"
import type { Fault } from "./faults.ts"
import type { Closure, ConnectionRecord, Overlap, OverlapSide, SentStanza } from "./history.ts"
import type { MediaKind } from "./media.ts"
import type {
  Encryption,
  MediaDelivery,
  ReceiptPolicy,
  ReceiptStep,
  ReceivedMessage,
  RetryRequest
} from "./messaging.ts"
import type { Simulator } from "./server.ts"

/** A request the control API refuses, with the status it answers. */
class ControlError extends Error {
  readonly status: number
  constructor(status: number, message: string) {
    super(message)
    this.status = status
  }
}

// Room for a file delivered as base64.
const MAX_BODY_BYTES = 16 * 1024 * 1024

const readJson = async (request: IncomingMessage): Promise<Record<string, unknown>> => {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) throw new ControlError(413, "body too large")
    chunks.push(chunk)
  }
  const text = Buffer.concat(chunks).toString("utf8")
  let body: unknown
  try {
    body = text.length === 0 ? {} : JSON.parse(text)
  } catch {
    throw new ControlError(400, "body is not JSON")
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ControlError(400, "body must be a JSON object")
  }
  return body as Record<string, unknown>
}

const stringField = (body: Record<string, unknown>, name: string): string => {
  const value = body[name]
  if (typeof value !== "string" || value.length === 0) throw new ControlError(400, `${name} must be a string`)
  return value
}

/** A phone number as the gateway writes it (`+15551234567`), or its digits alone; answers the digits. */
const phoneDigits = (text: string, name: string): string => {
  const match = /^\+?(\d{5,20})$/.exec(text)
  if (match === null) throw new ControlError(400, `${name} must be a phone number such as +15551234567`)
  return match[1]!
}

const phoneField = (body: Record<string, unknown>): string =>
  phoneDigits(stringField(body, "phone_number"), "phone_number")

const codeField = (body: Record<string, unknown>, name: string): number => {
  const value = body[name]
  if (typeof value !== "number" || !Number.isInteger(value))
    throw new ControlError(400, `${name} must be an integer`)
  return value
}

/** `{"kind":"stream-error","code":440}`, `{"kind":"failure","reason":405}` or `{"kind":"drop"}`. */
const readFault = (value: unknown): Fault => {
  if (typeof value !== "object" || value === null) throw new ControlError(400, "fault must be an object")
  const fault = value as Record<string, unknown>
  switch (fault.kind) {
    case "stream-error":
      return { kind: "stream-error", code: codeField(fault, "code") }
    case "failure":
      return { kind: "failure", reason: codeField(fault, "reason") }
    case "drop":
      return { kind: "drop" }
    default:
      throw new ControlError(400, "fault.kind must be stream-error, failure or drop")
  }
}

/** `"normal"`, `"drop"` or `{"delay_ms": 500}`; absent is normal. */
const readStep = (body: Record<string, unknown>, name: string): ReceiptStep | undefined => {
  const value = body[name]
  if (value === undefined || value === null || value === "normal") return undefined
  if (value === "drop") return "drop"
  const delay = typeof value === "object" ? (value as Record<string, unknown>).delay_ms : undefined
  if (typeof delay === "number" && Number.isInteger(delay) && delay >= 0) return { delayMs: delay }
  throw new ControlError(400, `${name} must be "normal", "drop" or {"delay_ms": <integer>}`)
}

const readPolicy = (body: Record<string, unknown>): ReceiptPolicy => {
  const ackError =
    body.ack_error === undefined || body.ack_error === null ? undefined : codeField(body, "ack_error")
  const ack = readStep(body, "ack")
  const delivered = readStep(body, "delivered")
  const read = readStep(body, "read")
  const played = readStep(body, "played")
  return {
    ...(ack ? { ack } : {}),
    ...(ackError ? { ackError } : {}),
    ...(delivered ? { delivered } : {}),
    ...(read ? { read } : {}),
    ...(played ? { played } : {})
  }
}

/** A proto.Message in protobuf's JSON form (bytes as base64), e.g. `{"conversation": "hi"}`. */
const readMessage = (value: unknown): proto.Message => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ControlError(400, "message must be a proto.Message as JSON")
  }
  try {
    return proto.Message.fromObject(value as Record<string, unknown>)
  } catch (error) {
    throw new ControlError(400, `message is not a proto.Message: ${String(error)}`)
  }
}

const MEDIA_KINDS: ReadonlyArray<MediaKind> = ["image", "video", "audio", "document", "sticker"]

/** `{"kind":"image"|"video"|"audio"|"document"|"sticker","base64":...,"mimetype":...,"file_name"?,"caption"?,"ptt"?}`. */
const readMedia = (value: unknown): MediaDelivery => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ControlError(400, "media must be an object")
  }
  const media = value as Record<string, unknown>
  const kind = MEDIA_KINDS.find((each) => each === media.kind)
  if (!kind) throw new ControlError(400, `media.kind must be one of ${MEDIA_KINDS.join(", ")}`)
  const optional = (name: string) => (media[name] === undefined ? undefined : stringField(media, name))
  const fileName = optional("file_name")
  const caption = optional("caption")
  if (media.ptt !== undefined && typeof media.ptt !== "boolean")
    throw new ControlError(400, "ptt must be a boolean")
  return {
    kind,
    bytes: Buffer.from(stringField(media, "base64"), "base64"),
    mimetype: stringField(media, "mimetype"),
    ...(fileName === undefined ? {} : { fileName }),
    ...(caption === undefined ? {} : { caption }),
    ...(media.ptt === undefined ? {} : { ptt: media.ptt })
  }
}

/** `"signal"` (the default) or `"plaintext"`. */
const readEncryption = (value: unknown): Encryption => {
  if (value === undefined || value === "signal") return "signal"
  if (value === "plaintext") return "plaintext"
  throw new ControlError(400, `encryption must be "signal" or "plaintext"`)
}

/** A positive integer, 1 when absent. */
const countField = (body: Record<string, unknown>, name: string): number => {
  if (body[name] === undefined) return 1
  const value = codeField(body, name)
  if (value < 1) throw new ControlError(400, `${name} must be at least 1`)
  return value
}

const receivedJson = (each: ReceivedMessage) => ({
  id: each.id,
  from: each.from,
  from_device: each.fromDevice,
  timestamp: each.timestamp,
  text: each.message.conversation ?? each.message.extendedTextMessage?.text ?? null,
  message: each.message.toJSON(),
  resend: each.resend
})

const retryRequestJson = (request: RetryRequest) => ({
  id: request.id,
  to: request.to,
  count: request.count,
  acked: request.acked,
  answered: request.answered
})

const closureJson = (closure: Closure | undefined) => {
  if (!closure) return null
  switch (closure.by) {
    case "fault":
      return { by: closure.by, fault: closure.fault }
    case "replaced":
      return { by: closure.by, replaced_by: closure.replacedBy }
    case "protocol-error":
      return { by: closure.by, error: closure.error }
    default:
      return { by: closure.by }
  }
}

const stanzaJson = (stanza: SentStanza) => ({
  at: stanza.at,
  kind: stanza.kind,
  tag: stanza.tag,
  attrs: stanza.attrs
})

const recordJson = (record: ConnectionRecord) => ({
  connection_id: record.connectionId,
  phone_number: record.phoneNumber,
  device_id: record.deviceId,
  jid: record.jid,
  logged_in_at: record.loggedInAt,
  ended_at: record.endedAt ?? null,
  closed_at: record.closedAt ?? null,
  closure: closureJson(record.closure),
  ws_close_code: record.wsCloseCode ?? null,
  sent: record.sent,
  stanzas: record.stanzas.map(stanzaJson)
})

const sideJson = (side: OverlapSide) => ({
  connection_id: side.connectionId,
  jid: side.jid,
  logged_in_at: side.loggedInAt,
  closed_at: side.closedAt ?? null,
  closure: closureJson(side.closure),
  sent: side.sent,
  stanzas: side.stanzas.map(stanzaJson)
})

const overlapJson = (overlap: Overlap) => ({
  phone_number: overlap.phoneNumber,
  same_device: overlap.sameDevice,
  from: overlap.from,
  until: overlap.until,
  duration_ms: overlap.durationMs,
  ongoing: overlap.ongoing,
  older: sideJson(overlap.older),
  newer: sideJson(overlap.newer)
})

const asControlError = (error: unknown) =>
  error instanceof ControlError
    ? error
    : new ControlError(409, error instanceof Error ? error.message : String(error))

/**
 * The fake phone's routes: what a person does with a phone, and what the network does to a session.
 * Bodies and answers are JSON; phone numbers are written `+15551234567` (E.164, as the gateway
 * writes them) or as their digits alone, in bodies and in paths (`{phone}`, `+` or `%2B` first). Times are the simulator's clock (see
 * `Simulator.now`): ms since the epoch, fractional; answers that hold times also carry `now`.
 *
 * - `POST /scan {qr, phone_number}`, `POST /pairing-code {phone_number, code}`: link a companion.
 * - `GET /accounts/{phone}/connections`: open logged-in connections `[{id, jid}]`.
 * - `POST /inject {phone_number, fault}`, `POST /login-fault {fault | null}`, `POST /stall
 *   {phone_number, stalled}`: faults (`{"kind":"stream-error","code":440}`, `{"kind":"failure",
 *   "reason":405}`, `{"kind":"drop"}`).
 * - `POST /receipts {phone_number, ack?, ack_error?, delivered?, read?, played?}`: how messages to
 *   that number fare, each step `"normal"`, `"drop"` or `{"delay_ms": n}` (read timed from the
 *   delivery, played from the read; played only for a voice note).
 * - `POST /deliver {to, from, id?, message | media, encryption?, copies?}`: the phone of `from` sends
 *   to every linked device of `to`; `message` is a proto.Message as JSON (any kind, e.g.
 *   `{"pollCreationMessage": ...}`), `media` is `{kind: image|video|audio|document|sticker, base64,
 *   mimetype, file_name?, caption?, ptt?}` (encrypted, hosted, sent as the kind's message;
 *   `ptt: true` makes an audio a voice note). `encryption` is `"signal"` (the default: `<enc>`
 *   pkmsg/msg per device) or `"plaintext"`. `copies` (default 1) sends it that many times, each copy
 *   once the device acknowledged the previous one, or at its next login (a plaintext copy is the
 *   same stanza; an encrypted one the same message encrypted anew); posting the same `id` again
 *   also delivers a duplicate. What a device does not acknowledge is delivered again at its next
 *   login. Answers `{id, devices, queued}` once sent: open connections it went to, whether some
 *   device was offline; 409 when `to` has no linked device.
 * - `POST /retry-receipt {phone_number, id, count?}`: the phone of `phone_number` asks the linked
 *   device that sent it message `id` to send it again (`<receipt type="retry">`, with its keys when
 *   `count` > 1); answers `{id, to, count, acked, answered}` (409 when no such message was received).
 *   `GET /accounts/{phone}/retry-receipts` lists them: `acked` once the device handled it (what it
 *   sent again, if anything, is decrypted by then), `answered` once a copy arrived after it.
 * - `POST /receipt {phone_number, id, type}`: the phone of `phone_number` sends a receipt (`type`
 *   delivery, read or played) for message `id` it received, now, whatever it sent already: a late,
 *   repeated or out-of-order receipt; answers `{sent: true}` (409 when no such message was received).
 * - `GET /accounts/{phone}/received`: `[{id, from, from_device, timestamp, text, message, resend}]`,
 *   each copy the phone decrypted (a message sent again is listed again; `resend` when it answered
 *   a retry receipt). `GET /accounts/{phone}/received/{id}/media`: `{base64}`, the file of any media
 *   kind in that message, decrypted. `GET /accounts/{phone}/receipts`: what its devices sent.
 *   `GET /media`: `{host, certificate}`.
 * - `GET /accounts/{phone}/pending`: `<message>` stanzas delivered to the account's linked devices
 *   and not acknowledged yet (delivered again at the device's next login): `[{id, device_jid}]`.
 *   `GET /accounts/{phone}/pending-receipts`: likewise the recipients' receipts for messages those
 *   devices sent: `[{id, type, device_jid}]` (`type` delivery, read or played).
 * - `GET /accounts/{phone}/history`, `GET /history` (every account): `{now, connections: [{connection_id,
 *   phone_number, device_id, jid, logged_in_at, ended_at, closed_at, closure, ws_close_code, sent,
 *   stanzas}]}` in login order, one per connection that got `<success>`; `closed_at` null while open;
 *   `closure` null while open, else `{by: "client"}`, `{by: "fault", fault}`, `{by: "replaced",
 *   replaced_by}`, `{by: "protocol-error", error}` or `{by: "shutdown"}`; `ended_at` when the server
 *   started ending it; `sent` counts by kind `{message, receipt, iq, presence, other}` what it sent
 *   after login, and `stanzas` lists it: `[{at, kind, tag, attrs}]`.
 * - `GET /accounts/{phone}/overlaps`, `GET /overlaps` (every account): `{now, overlaps: [{phone_number,
 *   same_device, from, until, duration_ms, ongoing, older, newer}]}`, every pair of one account's
 *   connections live at once (`[logged_in_at, closed_at)` intersect, open means open until now);
 *   `older` and `newer` (by login) are `{connection_id, jid, logged_in_at, closed_at, closure, sent,
 *   stanzas}`, with `sent` and `stanzas` only what that connection sent during the overlap.
 * - `POST /history/clear {phone_number?}`: forgets closed connections (of one account, or all) and what
 *   open ones sent so far; answers `{forgotten}`.
 * - `POST /replace-connections {enabled}`: when true, a login of a device that already has a live
 *   connection closes the older one with `<stream:error><conflict type="replaced"/>` (Baileys: 440);
 *   answers `{enabled}`. Off unless the simulator started with `WA_SIM_REPLACE_CONNECTIONS=1`.
 */
const route = async (simulator: Simulator, request: IncomingMessage): Promise<unknown> => {
  const path = new URL(request.url ?? "/", "http://control").pathname
  const history = /^\/accounts\/(?:\+|%2B)?(\d+)\/history$/.exec(path)
  if (request.method === "GET" && (history || path === "/history")) {
    const connections = simulator.connectionHistory(history?.[1]).map(recordJson)
    return { now: simulator.now(), connections }
  }
  const overlaps = /^\/accounts\/(?:\+|%2B)?(\d+)\/overlaps$/.exec(path)
  if (request.method === "GET" && (overlaps || path === "/overlaps")) {
    const found = simulator.overlaps(overlaps?.[1]).map(overlapJson)
    return { now: simulator.now(), overlaps: found }
  }
  const connections = /^\/accounts\/(?:\+|%2B)?(\d+)\/connections$/.exec(path)
  if (request.method === "GET" && connections) {
    return simulator
      .connectionsOf(connections[1]!)
      .map((connection) => ({ id: connection.id, jid: connection.jid }))
  }
  const received = /^\/accounts\/(?:\+|%2B)?(\d+)\/received$/.exec(path)
  if (request.method === "GET" && received) return simulator.received(received[1]!).map(receivedJson)
  const receivedMedia = /^\/accounts\/(?:\+|%2B)?(\d+)\/received\/([^/]+)\/media$/.exec(path)
  if (request.method === "GET" && receivedMedia) {
    const bytes = simulator.receivedMedia(receivedMedia[1]!, decodeURIComponent(receivedMedia[2]!))
    if (!bytes) throw new ControlError(404, "no media received with that id")
    return { base64: bytes.toString("base64") }
  }
  if (request.method === "GET" && path === "/media") {
    return { host: simulator.mediaHost, certificate: simulator.mediaCertificate }
  }
  const receipts = /^\/accounts\/(?:\+|%2B)?(\d+)\/receipts$/.exec(path)
  if (request.method === "GET" && receipts) return simulator.receiptsFrom(receipts[1]!)
  const pending = /^\/accounts\/(?:\+|%2B)?(\d+)\/pending$/.exec(path)
  if (request.method === "GET" && pending) {
    return simulator.pending(pending[1]!).map((each) => ({ id: each.id, device_jid: each.deviceJid }))
  }
  const pendingReceipts = /^\/accounts\/(?:\+|%2B)?(\d+)\/pending-receipts$/.exec(path)
  if (request.method === "GET" && pendingReceipts) {
    return simulator
      .pendingReceipts(pendingReceipts[1]!)
      .map((each) => ({ id: each.id, type: each.type, device_jid: each.deviceJid }))
  }
  const retries = /^\/accounts\/(?:\+|%2B)?(\d+)\/retry-receipts$/.exec(path)
  if (request.method === "GET" && retries) return simulator.retryRequests(retries[1]!).map(retryRequestJson)
  if (request.method !== "POST") throw new ControlError(404, "not found")
  const body = await readJson(request)
  switch (path) {
    case "/scan":
      return simulator
        .scan(stringField(body, "qr"), { phoneNumber: phoneField(body) })
        .catch((error: unknown) => Promise.reject(asControlError(error)))
    case "/pairing-code":
      return simulator
        .enterPairingCode(phoneField(body), stringField(body, "code"))
        .catch((error: unknown) => Promise.reject(asControlError(error)))
    case "/inject":
      return { ended: simulator.inject(phoneField(body), readFault(body.fault)) }
    case "/login-fault":
      simulator.setLoginFault(
        body.fault === null || body.fault === undefined ? undefined : readFault(body.fault)
      )
      return { fault: body.fault ?? null }
    case "/stall": {
      if (typeof body.stalled !== "boolean") throw new ControlError(400, "stalled must be a boolean")
      return { released: simulator.stall(phoneField(body), body.stalled) }
    }
    case "/history/clear":
      return {
        forgotten: simulator.clearHistory(body.phone_number === undefined ? undefined : phoneField(body))
      }
    case "/replace-connections": {
      if (typeof body.enabled !== "boolean") throw new ControlError(400, "enabled must be a boolean")
      simulator.setReplaceConnections(body.enabled)
      return { enabled: body.enabled }
    }
    case "/receipts":
      simulator.setReceipts(phoneField(body), readPolicy(body))
      return { phone_number: body.phone_number }
    case "/deliver": {
      const to = phoneDigits(stringField(body, "to"), "to")
      const from = phoneDigits(stringField(body, "from"), "from")
      const id = body.id === undefined ? undefined : stringField(body, "id")
      const content =
        body.media === undefined ? { message: readMessage(body.message) } : { media: readMedia(body.media) }
      const delivery = {
        from,
        ...content,
        ...(id ? { id } : {}),
        encryption: readEncryption(body.encryption),
        copies: countField(body, "copies")
      }
      return simulator.deliver(to, delivery).catch((error: unknown) => Promise.reject(asControlError(error)))
    }
    case "/retry-receipt": {
      const request = simulator.sendRetryReceipt(
        phoneField(body),
        stringField(body, "id"),
        countField(body, "count")
      )
      return retryRequestJson(request)
    }
    case "/receipt": {
      const type = stringField(body, "type")
      if (type !== "delivery" && type !== "read" && type !== "played")
        throw new ControlError(400, "type must be delivery, read or played")
      simulator.sendReceipt(phoneField(body), stringField(body, "id"), type)
      return { sent: true }
    }
    default:
      throw new ControlError(404, "not found")
  }
}

const reply = (response: ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body)
  response.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text)
  })
  response.end(text)
}

export interface ControlServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  readonly close: () => Promise<void>
}

/** The simulator's HTTP control API (JSON), for tests and tools in another process. Loopback only. */
export const startControlServer = async (simulator: Simulator, port = 0): Promise<ControlServer> => {
  const server = createServer((request, response) => {
    route(simulator, request).then(
      (body) => reply(response, 200, body),
      (error: unknown) => {
        const refused = asControlError(error)
        reply(response, refused.status, { error: refused.message })
      }
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(port, "127.0.0.1", resolve)
  })
  const address = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections()
        server.close((error) => (error ? reject(error) : resolve()))
      })
  }
}
