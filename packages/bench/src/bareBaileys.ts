import type { Simulator } from "@whatisup/wa-simulator"
import { Effect, type Queue, type Scope } from "effect"
import type {
  ConnectOptions,
  TransportEvent,
  WhatsAppTransport
} from "../../server/src/channels/transport.ts"
import type { AuthStateStore } from "../../server/src/channels/loginStore.ts"
import { nextEvent, noMessages, testChannel } from "../../server/test/support/baileys.ts"

/** A login kept in memory, values alone (the test harness's store also logs every write: memory a baseline must not carry). */
const memoryLogin = (): AuthStateStore => {
  const values = new Map<string, string>()
  return {
    read: (type, ids) =>
      Effect.sync(() =>
        Object.fromEntries(
          ids.flatMap((id) => {
            const value = values.get(`${type}/${id}`)
            return value === undefined ? [] : [[id, value]]
          })
        )
      ),
    write: (changes) =>
      Effect.sync(() => {
        for (const { type, id, value } of changes) {
          if (value === null) values.delete(`${type}/${id}`)
          else values.set(`${type}/${id}`, value)
        }
      })
  }
}

/**
 * A connection of the gateway's own Baileys transport alone (no gateway around it, its login kept in
 * memory), paired by QR to `phoneNumber` in the simulator and open, until the scope closes; inbound
 * messages go to `storeInbound` (none stored unless told).
 */
export const pairedBareConnection = (
  sim: Simulator,
  transport: WhatsAppTransport["Service"],
  phoneNumber: string,
  storeInbound: ConnectOptions["storeInbound"] = noMessages.storeInbound
): Effect.Effect<void, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const authState = memoryLogin()
    const actor = {}
    const connect = Effect.map(
      transport.connect({
        channelId: testChannel,
        pairing: { method: "qr" },
        authState,
        holdsLease: () => true,
        actor,
        ...noMessages,
        storeInbound
      }),
      (connection) => connection.events
    )
    const awaited = <T extends TransportEvent["_tag"]>(events: Queue.Dequeue<TransportEvent>, tag: T) =>
      nextEvent(
        `${phoneNumber}'s bare connection: ${tag}`,
        events,
        (e): e is Extract<TransportEvent, { _tag: T }> => e._tag === tag
      )
    // the pairing connection ends with the 515 and is released then, as the gateway's actor releases it
    yield* Effect.scoped(
      Effect.gen(function* () {
        const first = yield* connect
        const { qr } = yield* awaited(first, "Qr")
        yield* Effect.promise(() => sim.scan(qr, { phoneNumber }))
        yield* awaited(first, "Close")
      })
    )
    // the login is kept; the next connection opens with it
    yield* awaited(yield* connect, "Open")
  })
