import {
  type AuthenticationCreds,
  BufferJSON,
  type CacheStore,
  DEFAULT_CONNECTION_CONFIG,
  initAuthCreds,
  isHostedLidUser,
  isHostedPnUser,
  isLidUser,
  isPnUser,
  makeWASocket,
  proto,
  type SignalDataSet,
  type SignalDataTypeMap,
  type WAMessage,
  type WAMessageUpdate,
  type WAVersion
} from "@whiskeysockets/baileys"
import { Effect, Layer, Option, Queue } from "effect"
import pino from "pino"
import { AsyncLocalStorage } from "node:async_hooks"
import { Writable } from "node:stream"
import { type GatewayConfig, GatewayConfigService } from "../config/config.ts"
import type { AuthStateStore } from "../channels/loginStore.ts"
import { makeLruMap } from "../tenancy/lruMap.ts"
import { credsType } from "./authState.ts"
import {
  type InboundMessage,
  type MessageReceipt,
  TransportError,
  type TransportEvent,
  TransportEvent as Event,
  WhatsAppTransport
} from "../channels/transport.ts"
import { buildMessage, jidOf, phoneOf } from "./outboundContent.ts"

/** The WhatsApp Web WebSocket the gateway connects to: WHATISUP_WA_WS_URL, else WhatsApp's own. */
export const whatsAppUrl = (config: Pick<GatewayConfig, "waWsUrl">) =>
  Option.getOrElse(config.waWsUrl, () => String(DEFAULT_CONNECTION_CONFIG.waWebSocketUrl))

/** Baileys logs through pino; its lines are forwarded to the gateway's own (Effect) logger. */
const baileysLogger = (log: (level: string, message: string, fields: Record<string, unknown>) => void) =>
  pino(
    { level: "warn", base: null },
    new Writable({
      write(chunk, _encoding, done) {
        try {
          const { level, msg, time: _time, ...fields } = JSON.parse(String(chunk)) as Record<string, unknown>
          log(pino.levels.labels[Number(level)] ?? "info", String(msg ?? ""), fields)
        } catch {
          log("warn", String(chunk), {})
        }
        done()
      }
    })
  )

/**
 * How a line of Baileys' counts in the gateway's log: its errors are warnings at most here (the
 * channel's own lines say what happened), and the 515 stream error, WhatsApp's routine request to
 * reconnect (after every scan), is not even that.
 */
export const baileysLevel = (level: string, fields: Record<string, unknown>): "warn" | "debug" => {
  if (level !== "error" && level !== "fatal") return "debug"
  const node = fields.fullErrorNode as { readonly attrs?: { readonly code?: unknown } } | undefined
  return node?.attrs?.code === "515" ? "debug" : "warn"
}

/**
 * Baileys' `msgRetryCounterCache`: how often each message was asked for again, kept across the
 * reconnects of one actor (as Baileys asks) and bounded: beyond the latest 1,000 messages, the
 * oldest are forgotten.
 */
export class RetryCounters implements CacheStore {
  static readonly max = 1_000
  private readonly counts = new Map<string, unknown>()
  get<T>(key: string) {
    return this.counts.get(key) as T | undefined
  }
  set<T>(key: string, value: T) {
    this.counts.delete(key)
    this.counts.set(key, value)
    if (this.counts.size > RetryCounters.max) this.counts.delete(this.counts.keys().next().value!)
  }
  del(key: string) {
    this.counts.delete(key)
  }
  flushAll() {
    this.counts.clear()
  }
}

type Send = (data: unknown, ...rest: Array<unknown>) => void

/**
 * Every frame the socket would send first asks `allowed`: a process that resumes after a freeze
 * longer than its lease sends nothing (no keepalive, no receipt) before it closes. Baileys keeps its
 * WebSocket in a protected field and captured its send at start, so the gate goes on that socket.
 */
const gateSends = (socket: ReturnType<typeof makeWASocket>, allowed: () => boolean) => {
  const raw = (socket.ws as unknown as { readonly socket: { send: Send } | null }).socket
  if (raw === null) return
  const send = raw.send.bind(raw)
  raw.send = (data, ...rest) => {
    if (allowed()) return send(data, ...rest)
    const callback = rest.find((arg) => typeof arg === "function")
    if (typeof callback === "function") callback(new Error("not sent: the channel's lease may have lapsed"))
  }
}

type LoginChange = { readonly type: string; readonly id: string; readonly value: string | null }

/**
 * How long a new connection waits for the login writes of the channel's earlier connections before
 * it reads the login all the same (a database that hangs holds them; the wait is logged).
 */
const loginWritesWait = "30 seconds"

/**
 * A connection's login writes, queued behind every login write of its channel in this process (see
 * `loginWrites`), one at a time in the order Baileys made them: an older snapshot of the credentials
 * never lands after a newer one, whichever connection made it. The first write refused by the
 * lease's fence calls `fenced` (which ends the socket), and every later one of this connection,
 * Baileys' retries included, is refused without reaching the database.
 */
const serialWrites = (
  loginWrites: Map<string, Promise<unknown>>,
  channelId: string,
  authState: AuthStateStore,
  run: <A, E>(effect: Effect.Effect<A, E>) => Promise<A>,
  fenced: () => void
) => {
  let refused = false
  const refuse = Effect.sync(() => {
    refused = true
    fenced()
  })
  return (changes: ReadonlyArray<LoginChange>) => {
    const write = (loginWrites.get(channelId) ?? Promise.resolve()).then(() =>
      refused
        ? Promise.reject(new Error("not stored: the channel's lease is lost"))
        : run(authState.write(changes).pipe(Effect.tapError(() => refuse)))
    )
    const ended = write.catch(() => undefined)
    loginWrites.set(channelId, ended)
    void ended.then(() => {
      if (loginWrites.get(channelId) === ended) loginWrites.delete(channelId)
    })
    return write
  }
}

const parse = (value: string) => JSON.parse(value, BufferJSON.reviver) as unknown
const serialize = (value: unknown) => JSON.stringify(value, BufferJSON.replacer)

/** Signal keys a connection remembers at most, and the longest one it remembers (serialized). */
const rememberedKeys = 16
const rememberedLength = 8 * 1024

/** A connection's memory of its channel's Signal keys (see `makeKeyMemories`). */
export interface KeyMemory {
  /** The serialized value, null when there is none, undefined when not remembered. */
  readonly recall: (key: string) => string | null | undefined
  /** Before a read of the store: afterwards, remembers what it found unless a write overtook it. */
  readonly reading: () => (found: ReadonlyMap<string, string | null>) => void
  /** A write of these keys begins: every connection of the channel forgets them until it has ended. */
  readonly writing: (keys: ReadonlyArray<string>) => {
    /** It ended: once stored, the values of the keys no later write is changing are remembered. */
    readonly ended: (stored: ReadonlyMap<string, string | null> | undefined) => void
  }
  /** The connection ended: it remembers nothing more (its writes still count for the others). */
  readonly close: () => void
}

/**
 * What the connections of each channel in this process remember of its Signal keys. Only the
 * lease's holder writes a channel's keys, but a connection of it that ended may still finish a write
 * begun before (a key transaction's), after the next connection has read: every write of the channel,
 * whichever connection makes it, makes all of them forget the keys it changes, and a read remembers
 * nothing if any write of the channel began or was under way while it ran.
 */
export const makeKeyMemories = () => {
  interface Channel {
    begun: number
    underWay: number
    /** The latest write under way of each key. */
    readonly latest: Map<string, number>
    readonly memories: Set<ReturnType<typeof makeLruMap<string, string | null>>>
  }
  const channels = new Map<string, Channel>()
  const channelOf = (channelId: string) => {
    let channel = channels.get(channelId)
    if (channel === undefined) {
      channel = { begun: 0, underWay: 0, latest: new Map(), memories: new Set() }
      channels.set(channelId, channel)
    }
    return channel
  }
  const release = (channelId: string, channel: Channel) => {
    if (channel.memories.size === 0 && channel.underWay === 0 && channels.get(channelId) === channel) {
      channels.delete(channelId)
    }
  }
  return {
    /** How many channels have a memory or a write under way here (for tests). */
    size: () => channels.size,
    open: (channelId: string): KeyMemory => {
      const memory = makeLruMap<string, string | null>(rememberedKeys)
      channelOf(channelId).memories.add(memory)
      let open = true
      const remember = (key: string, value: string | null) => {
        if (open && (value === null || value.length <= rememberedLength)) memory.set(key, value)
      }
      return {
        recall: (key) => memory.get(key),
        reading: () => {
          const channel = channels.get(channelId)
          const quiet = channel !== undefined && channel.underWay === 0
          const begun = channel?.begun
          return (found) => {
            if (!quiet || channels.get(channelId) !== channel || channel.begun !== begun) return
            for (const [key, value] of found) remember(key, value)
          }
        },
        writing: (keys) => {
          const channel = channelOf(channelId)
          const sequence = ++channel.begun
          channel.underWay++
          for (const key of keys) {
            channel.latest.set(key, sequence)
            for (const each of channel.memories) each.delete(key)
          }
          return {
            ended: (stored) => {
              channel.underWay--
              for (const key of keys) {
                if (channel.latest.get(key) !== sequence) continue
                channel.latest.delete(key)
                const value = stored?.get(key)
                if (value !== undefined) remember(key, value)
              }
              release(channelId, channel)
            }
          }
        },
        close: () => {
          open = false
          memory.clear()
          const channel = channels.get(channelId)
          if (channel === undefined) return
          channel.memories.delete(memory)
          release(channelId, channel)
        }
      }
    }
  }
}

/**
 * Baileys' signal key store over the channel's fenced auth-state store. New pre-keys are stored
 * with the credentials' pre-key counter moved past them, in one transaction: a crash between the
 * two would otherwise hand out the same ids again, over keys WhatsApp may already hold.
 *
 * Baileys reads a Signal session (the contact's and the account's own devices'), and the contact's
 * token, for every message it encrypts: the connection remembers the keys it last read or wrote
 * (`memory`, the most recently used few), so that a conversation does not read them again each time.
 * The credentials are written apart from Baileys' keys too (on every creds.update), and Baileys never
 * reads them here: a write of them is not remembered.
 */
export const signalKeys = (
  creds: AuthenticationCreds,
  authState: AuthStateStore,
  run: <A, E>(effect: Effect.Effect<A, E>) => Promise<A>,
  write: (changes: ReadonlyArray<LoginChange>) => Promise<unknown>,
  memory: KeyMemory
) => ({
  get: async <T extends keyof SignalDataTypeMap>(type: T, ids: Array<string>) => {
    const values: Array<readonly [string, string]> = []
    const unknown: Array<string> = []
    for (const id of ids) {
      const value = memory.recall(`${type}/${id}`)
      if (value === undefined) unknown.push(id)
      else if (value !== null) values.push([id, value])
    }
    if (unknown.length > 0) {
      const remember = memory.reading()
      const found = await run(authState.read(type, unknown))
      for (const id of unknown) {
        const value = found[id]
        if (value !== undefined) values.push([id, value])
      }
      remember(new Map(unknown.map((id) => [`${type}/${id}`, found[id] ?? null])))
    }
    const keys: { [id: string]: SignalDataTypeMap[T] } = {}
    for (const [id, value] of values) {
      const parsed = parse(value)
      keys[id] = (
        type === "app-state-sync-key"
          ? proto.Message.AppStateSyncKeyData.fromObject(parsed as object)
          : parsed
      ) as SignalDataTypeMap[T]
    }
    return keys
  },
  set: async (data: SignalDataSet) => {
    const changes: Array<LoginChange> = []
    for (const [type, entries] of Object.entries(data)) {
      for (const [id, value] of Object.entries(entries ?? {})) {
        changes.push({ type, id, value: value === null || value === undefined ? null : serialize(value) })
      }
    }
    const newPreKeyIds = Object.entries(data["pre-key"] ?? {})
      .filter(([, value]) => value !== null && value !== undefined)
      .map(([id]) => Number(id))
    if (newPreKeyIds.length > 0) {
      creds.nextPreKeyId = Math.max(creds.nextPreKeyId, ...newPreKeyIds.map((id) => id + 1))
      changes.push({ type: credsType, id: "creds", value: serialize(creds) })
    }
    const remembered = changes.filter((change) => change.type !== credsType)
    // forgotten by every connection of the channel until stored, and when the write fails (it may or
    // may not have been stored)
    const writing = memory.writing(remembered.map((change) => `${change.type}/${change.id}`))
    let stored: Map<string, string | null> | undefined
    try {
      // durable before Baileys encrypts or decrypts with it
      await write(changes)
      stored = new Map(remembered.map((change) => [`${change.type}/${change.id}`, change.value]))
    } finally {
      writing.ended(stored)
    }
  }
})

/** Baileys' errors are Booms: their status, when they carry one. */
const statusOf = (cause: unknown) =>
  (cause as { output?: { statusCode?: number } } | null)?.output?.statusCode

const errorMessage = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/**
 * The phone number (E.164) of a one-to-one chat's jid: a phone-number jid as it is, a LID through
 * the jid WhatsApp sent beside it or Baileys' LID mapping; the LID jid itself when neither knows it.
 */
const phoneNumberOf = async (
  jid: string,
  alt: string | undefined,
  pnForLid: (lid: string) => Promise<string | null>
) => {
  if (isPnUser(jid) || isHostedPnUser(jid)) return phoneOf(jid)
  if (alt !== undefined && (isPnUser(alt) || isHostedPnUser(alt))) return phoneOf(alt)
  const pn = await pnForLid(jid)
  return pn ? phoneOf(pn) : jid
}

/**
 * The message to store, or undefined for what the gateway does not store: what the account's own
 * devices sent (the phone's copies of its own chats), groups, status, broadcasts and newsletters
 * (the gateway speaks one-to-one), and a message with no content at all.
 */
const inboundOf = async (
  message: WAMessage,
  type: "notify" | "append",
  pnForLid: (lid: string) => Promise<string | null>
): Promise<InboundMessage | undefined> => {
  const { key } = message
  const chat = key.remoteJid
  if (key.fromMe || !key.id || !chat || message.message == null) return undefined
  if (!(isPnUser(chat) || isLidUser(chat) || isHostedPnUser(chat) || isHostedLidUser(chat))) return undefined
  const from = await phoneNumberOf(chat, key.remoteJidAlt ?? undefined, pnForLid)
  const seconds = Number(message.messageTimestamp ?? 0)
  return {
    whatsappId: key.id,
    from,
    chat: from,
    timestamp: seconds > 0 ? new Date(seconds * 1000) : new Date(),
    ...(message.pushName ? { pushName: message.pushName } : {}),
    content: proto.Message.encode(message.message).finish(),
    type
  }
}

/**
 * Baileys' `beforeAck` (see the patch): each message to store is stored before WhatsApp hears it
 * arrived. Once one fails, `failed` closes the connection and every later message of it is refused
 * too, so all of them come again at the next login, in their order.
 */
const storeBeforeAck = (
  store: (messages: ReadonlyArray<InboundMessage>) => Promise<void>,
  pnForLid: (lid: string) => Promise<string | null>,
  failed: (error: unknown) => void
) => {
  let refused = false
  return async (message: WAMessage, type: "notify" | "append") => {
    if (refused) throw new Error("not stored: an earlier message of this connection could not be")
    const inbound = await inboundOf(message, type, pnForLid)
    if (inbound === undefined) return
    try {
      await store([inbound])
    } catch (error) {
      refused = true
      failed(error)
      throw error
    }
  }
}

/** The receipt a status of Baileys' stands for, if any. */
const receiptOf = (status: number | null | undefined): MessageReceipt["receipt"] | undefined => {
  switch (status) {
    case proto.WebMessageInfo.Status.DELIVERY_ACK:
      return "delivered"
    case proto.WebMessageInfo.Status.READ:
      return "read"
    case proto.WebMessageInfo.Status.PLAYED:
      return "played"
    default:
      return undefined
  }
}

/** What a receipt says of messages the channel sent (another device's read of a message it received is not one). */
const receiptsOf = (updates: ReadonlyArray<WAMessageUpdate>): ReadonlyArray<MessageReceipt> =>
  updates.flatMap(({ key, update }) => {
    const receipt = receiptOf(update.status)
    return key.fromMe && key.id != null && receipt !== undefined ? [{ messageId: key.id, receipt }] : []
  })

/**
 * Baileys' `beforeReceiptAck` (see the patch): what a receipt says is stored before WhatsApp hears it
 * arrived. Once a store fails, `failed` closes the connection and every later receipt of it is
 * refused too, so all of them come again at the next login.
 */
const storeBeforeReceiptAck = (
  store: (receipts: ReadonlyArray<MessageReceipt>) => Promise<void>,
  failed: (error: unknown) => void
) => {
  let refused = false
  return async (updates: ReadonlyArray<WAMessageUpdate>) => {
    if (refused) throw new Error("not stored: an earlier receipt of this connection could not be")
    const receipts = receiptsOf(updates)
    if (receipts.length === 0) return
    try {
      await store(receipts)
    } catch (error) {
      refused = true
      failed(error)
      throw error
    }
  }
}

/**
 * WhatsApp through Baileys 7.0.0-rc14: one socket per connection, its login in the channel's
 * auth-state store, its events turned into the port's. WHATISUP_WA_WS_URL points it at the
 * simulator in tests; WHATISUP_WA_VERSION overrides the WhatsApp Web version.
 */
export const layerBaileysTransport = Layer.effect(
  WhatsAppTransport,
  Effect.gen(function* () {
    const config = yield* GatewayConfigService
    const context = yield* Effect.context<never>()
    const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromiseWith(context)(effect)
    const logger = baileysLogger((level, message, fields) => {
      const log = baileysLevel(level, fields) === "warn" ? Effect.logWarning : Effect.logDebug
      Effect.runForkWith(context)(log(`baileys: ${message}`).pipe(Effect.annotateLogs(fields)))
    })
    // kept per actor, not per channel: they go when the actor that reconnects ends
    const counters = new WeakMap<object, RetryCounters>()
    // for each channel with login writes under way in this process, the promise that settles once
    // the last one asked for has ended: a new connection reads the login after them. The one right
    // after a scan (WhatsApp's 515) must log in with the credentials the scan gave; read before they
    // were stored, it would find the channel unpaired and show a new QR, and the scan would be lost.
    const loginWrites = new Map<string, Promise<unknown>>()
    const keyMemories = makeKeyMemories()

    return WhatsAppTransport.of({
      connect: ({
        channelId,
        pairing,
        authState,
        holdsLease,
        actor,
        storeInbound,
        storeReceipts,
        sentContent
      }) =>
        Effect.gen(function* () {
          const pendingWrites = loginWrites.get(channelId)
          if (pendingWrites !== undefined) {
            const ended = yield* Effect.timeoutOption(
              Effect.promise(() => pendingWrites),
              loginWritesWait
            )
            if (Option.isNone(ended)) {
              yield* Effect.logWarning(
                `the channel's earlier login writes have not ended after ${loginWritesWait}: reading its login all the same`
              ).pipe(Effect.annotateLogs({ channel_id: channelId }))
            }
          }
          const stored = yield* authState.read(credsType, ["creds"])
          const creds =
            stored.creds === undefined ? initAuthCreds() : (parse(stored.creds) as AuthenticationCreds)
          const events = yield* Queue.unbounded<TransportEvent>()
          const offer = (event: TransportEvent) => void Queue.offerUnsafe(events, event)
          const msgRetryCounterCache = counters.get(actor) ?? new RetryCounters()
          counters.set(actor, msgRetryCounterCache)

          // until the socket exists: what ends it, and how a LID is mapped to a phone number
          let endedWith: Error | undefined
          let end = (error: Error) => {
            endedWith ??= error
          }
          let pnForLid = (_lid: string): Promise<string | null> => Promise.resolve(null)
          const keyMemory = yield* Effect.acquireRelease(
            Effect.sync(() => keyMemories.open(channelId)),
            (memory) => Effect.sync(memory.close)
          )
          const write = serialWrites(loginWrites, channelId, authState, run, () => {
            logger.warn({ channel_id: channelId }, "the channel's lease is lost: closing its WhatsApp socket")
            end(new Error("the channel's lease is lost"))
          })
          const beforeAck = storeBeforeAck(
            (messages) => run(storeInbound(messages)),
            (lid) => pnForLid(lid),
            (error) => {
              logger.warn(
                { channel_id: channelId, error: String(error) },
                "an inbound message could not be stored: reconnecting, for WhatsApp to deliver it again"
              )
              end(new Error("an inbound message could not be stored"))
            }
          )

          const beforeReceiptAck =
            storeReceipts === undefined
              ? undefined
              : storeBeforeReceiptAck(
                  (receipts) => run(storeReceipts(receipts)),
                  (error) => {
                    logger.warn(
                      { channel_id: channelId, error: String(error) },
                      "a receipt could not be stored: reconnecting, for WhatsApp to deliver it again"
                    )
                    end(new Error("a receipt could not be stored"))
                  }
                )

          const socket = yield* Effect.acquireRelease(
            Effect.try({
              try: () =>
                makeWASocket({
                  auth: { creds, keys: signalKeys(creds, authState, run, write, keyMemory) },
                  logger: logger.child({ channel_id: channelId }),
                  ...(Option.isSome(config.waWsUrl) ? { waWebSocketUrl: config.waWsUrl.value } : {}),
                  ...(Option.isSome(config.waVersion)
                    ? { version: [...config.waVersion.value] as WAVersion }
                    : {}),
                  markOnlineOnConnect: false,
                  syncFullHistory: false,
                  shouldSyncHistoryMessage: () => false,
                  msgRetryCounterCache,
                  // a recipient's retry receipt is answered with the message as the outbox stored it
                  getMessage: async (key) => {
                    if (!key.id) return undefined
                    const content = await run(sentContent(key.id))
                    return content === undefined ? undefined : proto.Message.decode(content)
                  },
                  beforeAck,
                  ...(beforeReceiptAck === undefined ? {} : { beforeReceiptAck })
                }),
              catch: (cause) =>
                new TransportError({ reason: "could not start the WhatsApp client", retryable: true, cause })
            }),
            (socket) => Effect.sync(() => socket.end(undefined))
          )
          end = (error) => socket.end(error)
          if (endedWith !== undefined) end(endedWith)
          // The gateway's calls into the socket run as if from here, outside any of its key
          // transactions: an effect resumed by a callback made inside one (a key read, a message
          // stored before its ack) carries that transaction's async context, and a send made there
          // would join it, outside the transactions' lock.
          const outsideTransactions = AsyncLocalStorage.snapshot()
          pnForLid = (lid) => socket.signalRepository.lidMapping.getPNForLID(lid)
          gateSends(socket, () => {
            if (holdsLease()) return true
            end(new Error("the channel's lease is lost"))
            return false
          })

          let qrCount = 0
          let pairingRequested = false
          socket.ev.on("creds.update", (update) => {
            Object.assign(creds, update)
            write([{ type: credsType, id: "creds", value: serialize(creds) }]).then(
              () => offer(Event.CredentialsChanged()),
              (error) => logger.warn({ error: String(error) }, "could not store the credentials")
            )
          })
          socket.ev.on("connection.update", (update) => {
            if (update.qr !== undefined) {
              if (pairing.method === "pairing_code") {
                if (!pairingRequested) {
                  pairingRequested = true
                  socket.requestPairingCode(pairing.phoneNumber.replace(/^\+/, "")).then(
                    (code) => offer(Event.PairingCode({ code })),
                    (error) => logger.warn({ error: String(error) }, "could not request a pairing code")
                  )
                }
              } else {
                // Baileys shows the first code for 60 s, the next ones for 20 s each
                offer(
                  Event.Qr({
                    qr: update.qr,
                    expiresAt: new Date(Date.now() + (qrCount++ === 0 ? 60_000 : 20_000))
                  })
                )
              }
            }
            if (update.connection === "open") offer(Event.Open({ phoneNumber: phoneOf(creds.me?.id) }))
            if (update.connection === "close") {
              const error = update.lastDisconnect?.error as
                { output?: { statusCode?: number }; message?: string } | undefined
              offer(Event.Close({ code: error?.output?.statusCode ?? 500, reason: error?.message ?? "" }))
            }
          })
          socket.ws.on("CB:ack,class:message", (node: { attrs: Record<string, string> }) => {
            const id = node.attrs.id
            if (id !== undefined) {
              offer(
                Event.ServerAck({
                  messageId: id,
                  error: node.attrs.error === undefined ? null : Number(node.attrs.error)
                })
              )
            }
          })
          socket.ev.on("messages.update", (updates) => {
            for (const { key, update } of updates) {
              if (!key.fromMe || key.id == null) continue
              const receipt = receiptOf(update.status)
              if (update.status === proto.WebMessageInfo.Status.ERROR) {
                offer(
                  Event.ServerAck({
                    messageId: key.id,
                    error: Number(update.messageStubParameters?.[0] ?? 0) || null
                  })
                )
              } else if (receipt !== undefined && storeReceipts === undefined) {
                // with storeReceipts, it was stored before it was acknowledged (beforeReceiptAck)
                offer(Event.Receipt({ messageId: key.id, receipt }))
              }
            }
          })

          return {
            events,
            prepare: (to, content) =>
              Effect.tryPromise({
                try: async () => {
                  const message = await buildMessage(content, {
                    upload: socket.waUploadToServer,
                    ownJid: socket.user?.id ?? creds.me?.id ?? "",
                    logger
                  })
                  return proto.Message.encode(message).finish()
                },
                catch: (cause) =>
                  new TransportError({
                    reason: `could not prepare the message: ${errorMessage(cause)}`,
                    // Baileys answers 400 for content it cannot send; an upload or a closed socket may pass
                    retryable: statusOf(cause) !== 400,
                    cause
                  })
              }).pipe(Effect.withSpan("WhatsAppTransport.prepare")),
            send: ({ id, to, content }) =>
              Effect.try({
                try: () => proto.Message.decode(content),
                catch: (cause) =>
                  new TransportError({
                    reason: "the stored message does not decode",
                    retryable: false,
                    cause
                  })
              }).pipe(
                Effect.flatMap((message) =>
                  Effect.tryPromise({
                    try: () =>
                      outsideTransactions(() => socket.relayMessage(jidOf(to), message, { messageId: id })),
                    catch: (cause) =>
                      new TransportError({
                        reason: `send failed: ${errorMessage(cause)}`,
                        retryable: true,
                        cause
                      })
                  })
                ),
                Effect.asVoid,
                Effect.withSpan("WhatsAppTransport.send")
              ),
            markRead: (keys) =>
              Effect.tryPromise({
                try: () =>
                  outsideTransactions(() =>
                    socket.readMessages(
                      keys.map((key) => ({ remoteJid: jidOf(key.chat), fromMe: key.fromMe, id: key.id }))
                    )
                  ),
                catch: (cause) =>
                  new TransportError({
                    reason: `read receipt failed: ${errorMessage(cause)}`,
                    retryable: true,
                    cause
                  })
              }),
            logout: Effect.tryPromise({
              try: () => outsideTransactions(() => socket.logout()),
              catch: (cause) => new TransportError({ reason: "logout failed", retryable: true, cause })
            })
          }
        })
    })
  })
)
