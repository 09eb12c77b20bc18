import { proto } from "@whiskeysockets/baileys"
import { Context, Effect, Latch, Layer, Queue } from "effect"
import { credsType } from "./authState.ts"
import {
  type ConnectOptions,
  type InboundMessage,
  TransportError,
  TransportEvent,
  type WaKey,
  WhatsAppTransport
} from "../channels/transport.ts"
import { buildMessage, jidOf } from "./outboundContent.ts"

/** A message a channel sent through the memory transport. */
export interface SentMessage {
  readonly id: string
  readonly to: string
  readonly content: Uint8Array
}

/** What a send answers: the events that follow it (acks, receipts), or a failure. */
export type SendAnswer = (message: SentMessage) => ReadonlyArray<TransportEvent> | TransportError

const serverAck: SendAnswer = ({ id }) => [TransportEvent.ServerAck({ messageId: id, error: null })]

interface LiveConnection {
  readonly events: Queue.Queue<TransportEvent>
  readonly options: ConnectOptions
}

const login = (phoneNumber: string) => [
  { type: credsType, id: "creds", value: JSON.stringify({ phoneNumber }) }
]

/**
 * A WhatsApp that lives in memory, for tests: every event and failure can be scripted. Pairing
 * stores a login through the channel's auth-state store, as a real client does, so it survives
 * reconnects and restarts of the gateway and is gone after a logout.
 */
export class MemoryTransport extends Context.Service<
  MemoryTransport,
  {
    /** Sends an event to the channel's open connection; false when it has none. */
    readonly emit: (channelId: string, event: TransportEvent) => Effect.Effect<boolean>
    /** The phone scans the QR (or enters the code): the open connection logs in as this number. */
    readonly pair: (channelId: string, phoneNumber: string) => Effect.Effect<boolean>
    /** The phone scans the QR as WhatsApp does it: the login is stored and the server asks for a restart (515). */
    readonly scan: (channelId: string, phoneNumber: string) => Effect.Effect<boolean>
    /** The next `count` connects of the channel fail; `retryable: false` says trying again cannot help. */
    readonly failConnects: (channelId: string, count: number, retryable?: boolean) => Effect.Effect<void>
    /** The next connect of the channel dies with a defect, as a bug would. */
    readonly dieOnConnect: (channelId: string) => Effect.Effect<void>
    readonly isOpen: (channelId: string) => boolean
    readonly openConnections: () => number
    readonly connects: (channelId: string) => number
    readonly closes: (channelId: string) => number
    readonly logouts: (channelId: string) => number
    /** While held, a closing connection stays open (a socket slow to close) until the hold is let go. */
    readonly holdCloses: (held: boolean) => Effect.Effect<void>
    /** Whether one of the channel's connections is closing and not closed yet. */
    readonly isClosing: (channelId: string) => boolean
    /** The most connections of the channel that were open at one time (from connect until closed). */
    readonly mostOpenAtOnce: (channelId: string) => number
    /** Whether the channel's stored login exists (read through its last connection's store). */
    readonly isPaired: (channelId: string) => Effect.Effect<boolean>
    /** Every message the channel sent, in order (a resend appears again). */
    readonly sent: (channelId: string) => ReadonlyArray<SentMessage>
    /** How the channel's later sends are answered; a server ack unless told. */
    readonly answerSends: (channelId: string, answer: SendAnswer) => Effect.Effect<void>
    /** The inbound messages the channel marked read, in order. */
    readonly reads: (channelId: string) => ReadonlyArray<WaKey>
    /**
     * WhatsApp delivers messages to the channel's open connection: true once its `storeInbound`
     * stored them. When it fails the connection closes (500), as the Baileys transport does, for the
     * messages to come again; false then, or with no open connection.
     */
    readonly receive: (channelId: string, messages: ReadonlyArray<InboundMessage>) => Effect.Effect<boolean>
    /** The recipient's phone asks for a sent message again: what the connection's `sentContent` answers. */
    readonly retryReceipt: (channelId: string, whatsappId: string) => Effect.Effect<Uint8Array | undefined>
  }
>()("whatisup/MemoryTransport") {}

export const layerMemoryTransport = (options: { readonly qrLifetimeMillis?: number } = {}) => {
  const live = new Map<string, LiveConnection>()
  const stores = new Map<string, ConnectOptions["authState"]>()
  const failing = new Map<string, { count: number; retryable: boolean }>()
  const dying = new Set<string>()
  const counts = {
    connects: new Map<string, number>(),
    closes: new Map<string, number>(),
    logouts: new Map<string, number>()
  }
  const bump = (map: Map<string, number>, id: string) => map.set(id, (map.get(id) ?? 0) + 1)
  const closesLetGo = Latch.makeUnsafe(true)
  const open = new Map<string, number>()
  const mostOpen = new Map<string, number>()
  const closing = new Map<string, number>()
  const sentBy = new Map<string, Array<SentMessage>>()
  const answers = new Map<string, SendAnswer>()
  const readBy = new Map<string, Array<WaKey>>()
  const append = <A>(map: Map<string, Array<A>>, id: string, ...values: ReadonlyArray<A>) =>
    map.set(id, [...(map.get(id) ?? []), ...values])

  const emit = (channelId: string, event: TransportEvent) =>
    Effect.suspend(() => {
      const connection = live.get(channelId)
      return connection === undefined
        ? Effect.succeed(false)
        : Effect.as(Queue.offer(connection.events, event), true)
    })

  const transport = WhatsAppTransport.of({
    connect: (connectOptions) =>
      Effect.gen(function* () {
        const { channelId } = connectOptions
        bump(counts.connects, channelId)
        if (dying.delete(channelId))
          return yield* Effect.die(new Error(`scripted defect connecting ${channelId}`))
        const failures = failing.get(channelId)
        if (failures !== undefined && failures.count > 0) {
          failing.set(channelId, { ...failures, count: failures.count - 1 })
          return yield* new TransportError({
            reason: "scripted connect failure",
            retryable: failures.retryable
          })
        }
        const events = yield* Queue.unbounded<TransportEvent>()
        const connection: LiveConnection = { events, options: connectOptions }
        live.set(channelId, connection)
        bump(open, channelId)
        mostOpen.set(channelId, Math.max(mostOpen.get(channelId) ?? 0, open.get(channelId)!))
        yield* Effect.addFinalizer(() =>
          Effect.gen(function* () {
            bump(closing, channelId)
            yield* closesLetGo.await
            closing.set(channelId, closing.get(channelId)! - 1)
            open.set(channelId, open.get(channelId)! - 1)
            if (live.get(channelId) === connection) live.delete(channelId)
            bump(counts.closes, channelId)
          })
        )
        stores.set(channelId, connectOptions.authState)
        const stored = yield* connectOptions.authState.read(credsType, ["creds"])
        const phoneNumber =
          stored.creds === undefined ? undefined : (JSON.parse(stored.creds).phoneNumber as string)
        if (phoneNumber !== undefined) {
          yield* Queue.offer(events, TransportEvent.Open({ phoneNumber }))
        } else if (connectOptions.pairing.method === "qr") {
          yield* Queue.offer(
            events,
            TransportEvent.Qr({
              qr: `2@memory-${channelId}-${Date.now()},noise,identity,adv`,
              expiresAt: new Date(Date.now() + (options.qrLifetimeMillis ?? 60_000))
            })
          )
        } else {
          yield* Queue.offer(events, TransportEvent.PairingCode({ code: "MEMO1234" }))
        }
        return {
          events,
          prepare: (_to, content) =>
            Effect.tryPromise({
              // media are encrypted as Baileys does, and "uploaded" nowhere
              try: async () =>
                proto.Message.encode(
                  await buildMessage(content, {
                    upload: async (_file, { mediaType }) => ({
                      mediaUrl: `https://memory.invalid/${mediaType}`,
                      directPath: `/memory/${mediaType}`
                    }),
                    ownJid: jidOf(phoneNumber ?? "+0")
                  })
                ).finish(),
              catch: (cause) =>
                new TransportError({ reason: "could not prepare the message", retryable: false, cause })
            }),
          send: (message) =>
            Effect.suspend(() => {
              append(sentBy, channelId, message)
              const answer = (answers.get(channelId) ?? serverAck)(message)
              return answer instanceof TransportError
                ? Effect.fail(answer)
                : Effect.asVoid(Queue.offerAll(events, answer))
            }),
          markRead: (keys) => Effect.sync(() => void append(readBy, channelId, ...keys)),
          logout: Effect.sync(() => void bump(counts.logouts, channelId))
        }
      })
  })

  const control = MemoryTransport.of({
    emit,
    pair: (channelId, phoneNumber) =>
      Effect.suspend(() => {
        const connection = live.get(channelId)
        if (connection === undefined) return Effect.succeed(false)
        return connection.options.authState.write(login(phoneNumber)).pipe(
          Effect.andThen(emit(channelId, TransportEvent.Open({ phoneNumber }))),
          Effect.catchTag("LeaseLost", () => Effect.succeed(false))
        )
      }),
    scan: (channelId, phoneNumber) =>
      Effect.suspend(() => {
        const connection = live.get(channelId)
        if (connection === undefined) return Effect.succeed(false)
        return connection.options.authState.write(login(phoneNumber)).pipe(
          Effect.andThen(emit(channelId, TransportEvent.Close({ code: 515, reason: "restart required" }))),
          Effect.catchTag("LeaseLost", () => Effect.succeed(false))
        )
      }),
    failConnects: (channelId, count, retryable = true) =>
      Effect.sync(() => void failing.set(channelId, { count, retryable })),
    dieOnConnect: (channelId) => Effect.sync(() => void dying.add(channelId)),
    isOpen: (channelId) => live.has(channelId),
    openConnections: () => live.size,
    connects: (channelId) => counts.connects.get(channelId) ?? 0,
    closes: (channelId) => counts.closes.get(channelId) ?? 0,
    logouts: (channelId) => counts.logouts.get(channelId) ?? 0,
    holdCloses: (held) => Effect.asVoid(held ? closesLetGo.close : closesLetGo.open),
    isClosing: (channelId) => (closing.get(channelId) ?? 0) > 0,
    mostOpenAtOnce: (channelId) => mostOpen.get(channelId) ?? 0,
    isPaired: (channelId) =>
      Effect.suspend(() => {
        const store = stores.get(channelId)
        return store === undefined
          ? Effect.succeed(false)
          : Effect.map(store.read(credsType, ["creds"]), (stored) => stored.creds !== undefined)
      }),
    sent: (channelId) => sentBy.get(channelId) ?? [],
    answerSends: (channelId, answer) => Effect.sync(() => void answers.set(channelId, answer)),
    reads: (channelId) => readBy.get(channelId) ?? [],
    receive: (channelId, messages) =>
      Effect.suspend(() => {
        const connection = live.get(channelId)
        if (connection === undefined) return Effect.succeed(false)
        return connection.options.storeInbound(messages).pipe(
          Effect.as(true),
          Effect.catch(() =>
            Effect.as(
              Queue.offer(
                connection.events,
                TransportEvent.Close({ code: 500, reason: "an inbound message could not be stored" })
              ),
              false
            )
          )
        )
      }),
    retryReceipt: (channelId, whatsappId) =>
      Effect.suspend(() => {
        const connection = live.get(channelId)
        return connection === undefined
          ? Effect.succeed(undefined)
          : connection.options.sentContent(whatsappId)
      })
  })

  return Layer.mergeAll(Layer.succeed(WhatsAppTransport, transport), Layer.succeed(MemoryTransport, control))
}
