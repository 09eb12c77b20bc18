import { ChannelId } from "@whatisup/domain"
import { ConfigProvider, Context, Effect, Layer, type Option, Queue } from "effect"
import { LeaseLost } from "../../src/channels/leases.ts"
import type { AuthStateStore } from "../../src/channels/loginStore.ts"
import { type ConnectOptions, type TransportEvent, WhatsAppTransport } from "../../src/channels/transport.ts"
import { GatewayConfigService, loadConfig } from "../../src/config/config.ts"
import { layerBaileysTransport } from "../../src/whatsapp/baileysTransport.ts"
import { pause, waitFor } from "./waits.ts"

/** The channel the transport tests connect as: no gateway, so no channel row behind it. */
export const testChannel = ChannelId.make("ch_01testtesttesttesttesttest")

/** For connections that neither receive nor send messages: nothing stored, nothing to answer retries with. */
export const noMessages: Pick<ConnectOptions, "storeInbound" | "sentContent"> = {
  storeInbound: () => Effect.void,
  sentContent: () => Effect.succeed(undefined)
}

/** The Baileys transport on its own (no gateway around it), talking to the simulator at `url`. */
export const baileysTransport = (url: string) =>
  Effect.gen(function* () {
    const config = yield* loadConfig.pipe(
      Effect.provideService(
        ConfigProvider.ConfigProvider,
        ConfigProvider.fromEnvRecord({ WHATISUP_WA_WS_URL: url, LOG_LEVEL: "error" })
      )
    )
    const services = yield* Layer.build(
      layerBaileysTransport.pipe(Layer.provide(Layer.succeed(GatewayConfigService, config)))
    )
    return Context.get(services, WhatsAppTransport)
  })

/** Waits for the next event the predicate accepts, skipping others, a bounded number of times. */
export const nextEvent = <A extends TransportEvent>(
  label: string,
  events: Queue.Dequeue<TransportEvent>,
  accept: (event: TransportEvent) => event is A
) =>
  Effect.map(
    waitFor(label, Queue.poll(events), (event) => event._tag === "Some" && accept(event.value), {
      attempts: 400
    }),
    (event) => (event as Option.Some<A>).value
  )

/** The event of this tag, typed. */
export const tagged =
  <T extends TransportEvent["_tag"]>(tag: T) =>
  (event: TransportEvent): event is Extract<TransportEvent, { _tag: T }> =>
    event._tag === tag

export type LoginChange = Parameters<AuthStateStore["write"]>[0][number]

/** One write a connection made to its login store, as the store saw it. */
export interface LoggedWrite {
  /** The order the connection asked for it in. */
  readonly seq: number
  readonly changes: ReadonlyArray<LoginChange>
  /** When it finished, in the order writes finished; undefined while it runs. */
  finished: number | undefined
  outcome: "stored" | "refused" | undefined
}

export interface LoginStoreOptions {
  /** Real milliseconds a write takes (none unless told). */
  readonly delayMillis?: (write: LoggedWrite) => number
}

/**
 * A login kept in memory, with the store's contract (database fencing is tested elsewhere; here
 * `fence()` makes every later write fail with `LeaseLost`, as the database does once the lease is
 * someone else's) and a log of every write: in what order it was asked for and finished, how many
 * ran at once.
 */
export const makeLoginStore = (options: LoginStoreOptions = {}) => {
  const values = new Map<string, string>()
  const writes: Array<LoggedWrite> = []
  let fenced = false
  let running = 0
  let mostAtOnce = 0
  let finishedCount = 0
  const reads: Array<{ readonly type: string; readonly ids: ReadonlyArray<string> }> = []
  const store: AuthStateStore = {
    read: (type, ids) =>
      Effect.sync(() => {
        reads.push({ type, ids })
        return Object.fromEntries(
          ids.flatMap((id) => (values.has(`${type}/${id}`) ? [[id, values.get(`${type}/${id}`)!]] : []))
        )
      }),
    write: (changes) => {
      const write: LoggedWrite = { seq: writes.length, changes, finished: undefined, outcome: undefined }
      writes.push(write)
      return Effect.gen(function* () {
        running++
        mostAtOnce = Math.max(mostAtOnce, running)
        const delay = options.delayMillis?.(write) ?? 0
        if (delay > 0) yield* pause(delay)
        running--
        write.finished = finishedCount++
        if (fenced) {
          write.outcome = "refused"
          return yield* new LeaseLost({ channelId: testChannel })
        }
        for (const { type, id, value } of changes) {
          if (value === null) values.delete(`${type}/${id}`)
          else values.set(`${type}/${id}`, value)
        }
        write.outcome = "stored"
      })
    }
  }
  return {
    store,
    writes,
    /** Every read, in order: the key type and the ids asked for. */
    reads,
    values,
    /** The lease is someone else's from now on: every later write is refused. */
    fence: () => {
      fenced = true
    },
    mostAtOnce: () => mostAtOnce
  }
}
