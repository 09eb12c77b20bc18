import { Context, Effect, Layer, Queue } from "effect"
import { type ConnectOptions, TransportError, TransportEvent, WhatsAppTransport } from "./transport.ts"

interface LiveConnection {
  readonly events: Queue.Queue<TransportEvent>
  readonly options: ConnectOptions
}

/**
 * A WhatsApp that lives in memory, for tests: every event and failure can be scripted. A channel
 * that has paired keeps its "login" across connections, as stored credentials would.
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
    readonly isPaired: (channelId: string) => boolean
  }
>()("whatisup/MemoryTransport") {}

export const layerMemoryTransport = (options: { readonly qrLifetimeMillis?: number } = {}) => {
  const live = new Map<string, LiveConnection>()
  const paired = new Map<string, string>()
  const failing = new Map<string, { count: number; retryable: boolean }>()
  const dying = new Set<string>()
  const counts = {
    connects: new Map<string, number>(),
    closes: new Map<string, number>(),
    logouts: new Map<string, number>()
  }
  const bump = (map: Map<string, number>, id: string) => map.set(id, (map.get(id) ?? 0) + 1)

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
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            if (live.get(channelId) === connection) live.delete(channelId)
            bump(counts.closes, channelId)
          })
        )
        const phoneNumber = paired.get(channelId)
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
          send: () => Effect.void,
          logout: Effect.sync(() => {
            bump(counts.logouts, channelId)
            paired.delete(channelId)
          })
        }
      }),
    forget: (channelId) => Effect.sync(() => void paired.delete(channelId))
  })

  const control = MemoryTransport.of({
    emit,
    pair: (channelId, phoneNumber) =>
      Effect.suspend(() => {
        if (!live.has(channelId)) return Effect.succeed(false)
        paired.set(channelId, phoneNumber)
        return emit(channelId, TransportEvent.Open({ phoneNumber }))
      }),
    scan: (channelId, phoneNumber) =>
      Effect.suspend(() => {
        if (!live.has(channelId)) return Effect.succeed(false)
        paired.set(channelId, phoneNumber)
        return emit(channelId, TransportEvent.Close({ code: 515, reason: "restart required" }))
      }),
    failConnects: (channelId, count, retryable = true) =>
      Effect.sync(() => void failing.set(channelId, { count, retryable })),
    dieOnConnect: (channelId) => Effect.sync(() => void dying.add(channelId)),
    isOpen: (channelId) => live.has(channelId),
    openConnections: () => live.size,
    connects: (channelId) => counts.connects.get(channelId) ?? 0,
    closes: (channelId) => counts.closes.get(channelId) ?? 0,
    logouts: (channelId) => counts.logouts.get(channelId) ?? 0,
    isPaired: (channelId) => paired.has(channelId)
  })

  return Layer.mergeAll(Layer.succeed(WhatsAppTransport, transport), Layer.succeed(MemoryTransport, control))
}
