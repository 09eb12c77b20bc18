import {
  binaryNodeToString,
  decodeBinaryNode,
  encodeBinaryNode,
  proto,
  type BinaryNode,
  type KeyPair
} from "@whiskeysockets/baileys"
import { randomBytes } from "node:crypto"
import type { WebSocket } from "ws"
import { encodeFrame, makeFrameReader } from "./frames.ts"
import type { SimulatorLogger } from "./logger.ts"
import { makeResponderNoise, type Transport } from "./noise.ts"

export interface ConnectionHandlers {
  /** The client finished the handshake and presented its login (or registration) payload. */
  readonly onLogin: (connection: Connection, payload: proto.ClientPayload) => void
  /** A stanza that is not the answer to one of our own queries. */
  readonly onStanza: (connection: Connection, node: BinaryNode) => void
  /** Every stanza the client sent after the handshake, answers to our queries included, as it arrives. */
  readonly onReceived: (connection: Connection, node: BinaryNode) => void
  /** The socket closed; `protocolError` when the server closed it because it could not read the client. */
  readonly onClose: (
    connection: Connection,
    closed: { readonly code: number; readonly protocolError: string | undefined }
  ) => void
}

/** One WebSocket from one client, from the Noise handshake to its close. */
export interface Connection {
  readonly id: number
  /** The client's static Noise key (`creds.noiseKey.public`), known once the handshake is done. */
  readonly noiseKey: () => Uint8Array | undefined
  readonly payload: () => proto.ClientPayload | undefined
  /** The account jid this connection logged in as, once it has. */
  jid: string | undefined
  readonly send: (node: BinaryNode) => void
  /** Sends an iq (an id is added when missing) and resolves with the client's answer. */
  readonly query: (node: BinaryNode) => Promise<BinaryNode>
  /** `<stream:error code=...>`: Baileys ends the socket with that status code. */
  readonly streamError: (code: number) => void
  /**
   * `<stream:error><conflict type="replaced"/></stream:error>`, what WhatsApp sends a connection
   * that another login of the same device replaced: Baileys maps `conflict` to 440 (connectionReplaced).
   */
  readonly replaced: () => void
  /** `<failure reason=...>`: what the server sends instead of `<success>` (401 logged out, 405 outdated...). */
  readonly failure: (reason: number) => void
  /** Closes the WebSocket without a word, like a dropped network. */
  readonly drop: () => void
  readonly isOpen: () => boolean
}

let nextConnectionId = 1

const makeIdFactory = () => {
  const prefix = randomBytes(3).toString("hex")
  let counter = 0
  return () => `sim-${prefix}-${counter++}`
}

const GRACE_AFTER_STREAM_END_MS = 2_000

export const makeConnection = (
  ws: WebSocket,
  options: {
    readonly staticKeyPair: KeyPair
    readonly certChain: Uint8Array
    readonly logger: SimulatorLogger
    readonly handlers: ConnectionHandlers
  }
): Connection => {
  const { logger, handlers } = options
  const id = nextConnectionId++
  const reader = makeFrameReader()
  const nextId = makeIdFactory()
  const pendingQueries = new Map<
    string,
    { readonly resolve: (node: BinaryNode) => void; readonly reject: (error: Error) => void }
  >()
  let noise: ReturnType<typeof makeResponderNoise> | undefined
  let transport: Transport | undefined
  let noiseKey: Uint8Array | undefined
  let payload: proto.ClientPayload | undefined
  let inbound: Promise<void> = Promise.resolve()
  let protocolError: string | undefined

  const isOpen = () => ws.readyState === ws.OPEN
  const logStanzas = logger.isLevelEnabled?.("debug") ?? true

  const sendRaw = (bytes: Uint8Array) => {
    if (isOpen()) ws.send(encodeFrame(bytes))
  }

  const send = (node: BinaryNode) => {
    if (!transport) throw new Error("cannot send a stanza before the Noise handshake is done")
    if (logStanzas) logger.debug({ connection: id, xml: binaryNodeToString(node) }, "send")
    sendRaw(transport.encrypt(encodeBinaryNode(node)))
  }

  const endAfterGrace = () => {
    // Baileys decodes frames asynchronously: closing at once could overtake the stanza just sent.
    const timer = setTimeout(() => ws.terminate(), GRACE_AFTER_STREAM_END_MS)
    ws.once("close", () => clearTimeout(timer))
  }

  const connection: Connection = {
    id,
    noiseKey: () => noiseKey,
    payload: () => payload,
    jid: undefined,
    send,
    query: (node) => {
      const queryId = node.attrs.id ?? nextId()
      const withId: BinaryNode = { ...node, attrs: { ...node.attrs, id: queryId } }
      return new Promise<BinaryNode>((resolve, reject) => {
        if (!isOpen()) return reject(new Error(`connection closed before iq ${queryId} was sent`))
        pendingQueries.set(queryId, { resolve, reject })
        send(withId)
      })
    },
    streamError: (code) => {
      send({ tag: "stream:error", attrs: { code: String(code) } })
      endAfterGrace()
    },
    replaced: () => {
      send({ tag: "stream:error", attrs: {}, content: [{ tag: "conflict", attrs: { type: "replaced" } }] })
      endAfterGrace()
    },
    failure: (reason) => {
      send({ tag: "failure", attrs: { reason: String(reason), location: "sim" } })
      endAfterGrace()
    },
    drop: () => ws.terminate(),
    isOpen
  }

  const onHandshakeFrame = (frame: Buffer) => {
    const message = proto.HandshakeMessage.decode(frame)
    if (!noise) throw new Error("handshake frame before the intro")
    if (message.clientHello) {
      sendRaw(noise.serverHello(message.clientHello, options.certChain))
    } else if (message.clientFinish) {
      const finished = noise.clientFinish(message.clientFinish)
      transport = finished.transport
      noiseKey = finished.clientStatic
      payload = finished.payload
      handlers.onLogin(connection, finished.payload)
    } else {
      throw new Error("unexpected handshake message")
    }
  }

  const onStanza = (node: BinaryNode) => {
    if (logStanzas) logger.debug({ connection: id, xml: binaryNodeToString(node) }, "recv")
    handlers.onReceived(connection, node)
    const answered = node.tag === "iq" && (node.attrs.type === "result" || node.attrs.type === "error")
    const waiting = answered && node.attrs.id ? pendingQueries.get(node.attrs.id) : undefined
    if (waiting && node.attrs.id) {
      pendingQueries.delete(node.attrs.id)
      waiting.resolve(node)
      return
    }
    handlers.onStanza(connection, node)
  }

  const onData = async (data: Buffer) => {
    const { intro, frames } = reader.push(data)
    if (intro) noise = makeResponderNoise(intro, options.staticKeyPair)
    for (const frame of frames) {
      if (transport) onStanza(await decodeBinaryNode(transport.decrypt(frame)))
      else onHandshakeFrame(frame)
    }
  }

  ws.on("message", (data: Buffer, isBinary: boolean) => {
    if (!isBinary) return
    // Frames are decoded one after the other: decodeBinaryNode is asynchronous.
    inbound = inbound
      .then(() => onData(data))
      .catch((error: unknown) => {
        logger.warn({ connection: id, error: String(error) }, "protocol error, closing the connection")
        protocolError = String(error)
        ws.terminate()
      })
  })
  ws.on("close", (code: number) => {
    for (const [queryId, waiting] of pendingQueries) {
      waiting.reject(new Error(`connection closed before iq ${queryId} was answered`))
    }
    pendingQueries.clear()
    handlers.onClose(connection, { code, protocolError })
  })
  return connection
}
