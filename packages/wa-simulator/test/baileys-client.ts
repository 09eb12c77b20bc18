import makeWASocket, {
  getBinaryNodeChild,
  initAuthCreds,
  type BinaryNode,
  type AuthenticationCreds,
  type ConnectionState,
  type SignalDataSet,
  type SignalDataTypeMap,
  type SignalKeyStore,
  type UserFacingSocketConfig
} from "@whiskeysockets/baileys"
import type { ILogger } from "@whiskeysockets/baileys/lib/Utils/logger.js"
import type { SimulatorLogger } from "../src/index.ts"

const LEVELS = ["trace", "debug", "info", "warn", "error"] as const

/** Quiet unless WA_SIM_LOG names a level (trace, debug, info...). */
const makeLogger = (level: string, bindings: Record<string, unknown> = {}): ILogger => {
  const threshold = LEVELS.indexOf(level as (typeof LEVELS)[number])
  const at = (index: number) => (obj: unknown, msg?: string) => {
    if (threshold >= 0 && index >= threshold) console.log(LEVELS[index], bindings, msg ?? "", obj)
  }
  return {
    level: threshold >= 0 ? level : "silent",
    child: (more) => makeLogger(level, { ...bindings, ...more }),
    trace: at(0),
    debug: at(1),
    info: at(2),
    warn: at(3),
    error: at(4)
  }
}

export const testLogger = makeLogger(process.env.WA_SIM_LOG ?? "silent")

const simulatorLevel = process.env.WA_SIM_LOG ?? "silent"

export const simulatorLogger: SimulatorLogger = {
  ...makeLogger(simulatorLevel, { side: "simulator" }),
  isLevelEnabled: (level) =>
    LEVELS.indexOf(level as (typeof LEVELS)[number]) >=
      LEVELS.indexOf(simulatorLevel as (typeof LEVELS)[number]) &&
    LEVELS.includes(simulatorLevel as (typeof LEVELS)[number])
}

/** Baileys' auth state kept in memory, as an application would keep it in its own store. */
export const makeMemoryAuthState = () => {
  const creds: AuthenticationCreds = initAuthCreds()
  const data = new Map<string, unknown>()
  const keys: SignalKeyStore = {
    get: <T extends keyof SignalDataTypeMap>(type: T, ids: string[]) => {
      const found: { [id: string]: SignalDataTypeMap[T] } = {}
      for (const id of ids) {
        const value = data.get(`${type}/${id}`)
        if (value !== undefined) found[id] = value as SignalDataTypeMap[T]
      }
      return found
    },
    set: (update: SignalDataSet) => {
      for (const [type, values] of Object.entries(update)) {
        for (const [id, value] of Object.entries(values ?? {})) {
          if (value === null || value === undefined) data.delete(`${type}/${id}`)
          else data.set(`${type}/${id}`, value)
        }
      }
    }
  }
  return { creds, keys }
}

export type MemoryAuthState = ReturnType<typeof makeMemoryAuthState>

/** A real Baileys socket against the simulator, with every `connection.update` recorded. */
export const connectBaileys = (
  url: string,
  auth: MemoryAuthState,
  options: Partial<UserFacingSocketConfig> = {}
) => {
  const updates: Partial<ConnectionState>[] = []
  const waiters: Array<() => void> = []
  const socket = makeWASocket({
    waWebSocketUrl: url,
    auth,
    logger: testLogger,
    markOnlineOnConnect: false,
    printQRInTerminal: false,
    ...options
  })
  socket.ev.on("creds.update", (update) => Object.assign(auth.creds, update))
  socket.ev.on("connection.update", (update) => {
    updates.push(update)
    for (const wake of waiters.splice(0)) wake()
  })
  /** Resolves with the first update (past or future) that matches. */
  const waitFor = (matches: (update: Partial<ConnectionState>) => boolean) =>
    new Promise<Partial<ConnectionState>>((resolve) => {
      const check = () => {
        const found = updates.find(matches)
        if (found) resolve(found)
        else waiters.push(check)
      }
      check()
    })
  return { socket, updates, waitFor }
}

export const statusCodeOf = (update: Partial<ConnectionState>): number | undefined =>
  (update.lastDisconnect?.error as { output?: { statusCode?: number } } | undefined)?.output?.statusCode

/**
 * Reads `get` again and again (yielding to the event loop) until `accept` takes what it read, and
 * returns that; throws, naming `label` and the last value read, after `attempts` reads.
 */
export const pollUntil = async <A>(
  label: string,
  get: () => A | Promise<A>,
  accept: (value: A) => boolean,
  { pauseMs = 20, attempts = 1_500 } = {}
): Promise<A> => {
  let last: A | undefined
  for (let i = 0; i < attempts; i++) {
    last = await get()
    if (accept(last)) return last
    await new Promise((resolve) => setTimeout(resolve, pauseMs))
  }
  throw new Error(
    `waited for ${label}: still not true after ${attempts} checks; last seen: ${JSON.stringify(last)}`
  )
}

/** Checks until `check` holds; throws naming the condition (its source) when it never does. */
export const eventually = async (check: () => boolean, pauseMs = 20): Promise<void> => {
  await pollUntil(check.toString(), check, (holds) => holds, { pauseMs })
}

/** One `<message>` stanza a socket received: its id, how its content came (`pkmsg`, `msg` or `plaintext`), the attributes that mark a copy. */
export interface ReceivedStanza {
  /** When it came off the wire, on the clock given to `recordMessageStanzas`. */
  readonly at: number
  readonly id: string
  readonly payload: string
  readonly offline: boolean
  /** The retry count a message sent again in answer to a retry receipt carries on its `<enc>`. */
  readonly count: string | undefined
}

/** Every `<message>` stanza the socket receives from now on, in order, as it came off the wire. */
export const recordMessageStanzas = (
  socket: ReturnType<typeof makeWASocket>,
  now: () => number = Date.now
): ReceivedStanza[] => {
  const seen: ReceivedStanza[] = []
  socket.ws.on("CB:message", (node: BinaryNode) => {
    const enc = getBinaryNodeChild(node, "enc")
    seen.push({
      at: now(),
      id: node.attrs.id ?? "",
      payload: enc ? (enc.attrs.type ?? "") : getBinaryNodeChild(node, "plaintext") ? "plaintext" : "",
      offline: node.attrs.offline !== undefined,
      count: enc?.attrs.count
    })
  })
  return seen
}
