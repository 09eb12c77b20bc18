import type { Simulator } from "@whatisup/wa-simulator"
import { Effect, type Queue, type Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type {
  ConnectOptions,
  TransportEvent,
  WhatsAppTransport
} from "../../server/src/channels/transport.ts"
import type { AuthStateStore } from "../../server/src/channels/loginStore.ts"
import { nextEvent, noMessages, testChannel } from "../../server/test/support/baileys.ts"
import type { BaileysPackage, BareReport, ConnectRequest } from "./bare-baileys-process.ts"
import { forkIpcProcess, type ProcessMemory } from "./ipcProcess.ts"
import { ScenarioFailed } from "./measure.ts"

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

const bareMain = path.resolve(import.meta.dirname, "bare-baileys-process.ts")

const isReport =
  <K extends BareReport["kind"]>(kind: K, phone?: string) =>
  (report: unknown): report is Extract<BareReport, { kind: K }> =>
    (report as BareReport).kind === kind &&
    (phone === undefined || (report as { readonly phone?: string }).phone === phone)

/** Bare Baileys sockets in a plain process of their own (see `bare-baileys-process.ts`). */
export interface BareBaileysProcess {
  /** Opens a socket in the plain process and pairs it, by QR, to `phoneNumber` in the simulator. */
  readonly pair: (phoneNumber: string) => Effect.Effect<void, ScenarioFailed>
  /** The plain process's memory, after a full collection. */
  readonly memory: Effect.Effect<ProcessMemory, ScenarioFailed>
  readonly snapshot: (name: string) => Effect.Effect<void, ScenarioFailed>
}

/**
 * Starts a plain process of bare Baileys sockets on `baileys` (as published, or as the gateway
 * patched it), talking to `sim`, until the scope closes.
 */
export const bareBaileysProcess = (
  sim: Simulator,
  baileys: BaileysPackage
): Effect.Effect<BareBaileysProcess, ScenarioFailed, Scope.Scope> =>
  Effect.gen(function* () {
    // the sockets' Signal keys, in files: gone with the scope
    const keysDir = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "whatisup-bare-baileys-"))),
      (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
    )
    const bare = yield* forkIpcProcess(bareMain, [sim.url, keysDir, baileys], {
      PATH: process.env.PATH,
      HOME: process.env.HOME
    })
    yield* bare.next("the bare Baileys process starts", isReport("ready"))
    return {
      memory: bare.memory,
      snapshot: bare.snapshot,
      pair: (phoneNumber) =>
        Effect.gen(function* () {
          yield* bare.send({ kind: "connect", phone: phoneNumber } satisfies ConnectRequest)
          const { qr } = yield* bare.next(
            `${phoneNumber}'s bare socket: a QR code`,
            isReport("qr", phoneNumber)
          )
          yield* Effect.promise(() => sim.scan(qr, { phoneNumber }))
          const ended = yield* bare.next(
            `${phoneNumber}'s bare socket: open`,
            (report): report is Extract<BareReport, { kind: "open" | "closed" }> =>
              isReport("open", phoneNumber)(report) || isReport("closed", phoneNumber)(report)
          )
          if (ended.kind === "closed") {
            return yield* new ScenarioFailed({
              message: `${phoneNumber}'s bare socket closed (${ended.code}) instead of opening`
            })
          }
        })
    }
  })
