import type { BinaryNode } from "@whiskeysockets/baileys"
import type { Fault } from "./faults.ts"

/**
 * The simulator's clock, in milliseconds since the Unix epoch (fractional): `performance.timeOrigin +
 * performance.now()`. Monotonic within the simulator's process, so an interval is never negative;
 * comparable with `Date.now()` taken in another process to within the drift of the wall clock since
 * the simulator started (a few ms).
 */
export const simulatorNow = (): number => performance.timeOrigin + performance.now()

/** By tag: `<message>`, `<receipt>`, `<iq>`, `<presence>` and `<chatstate>` (typing), anything else (`<ack>`...). */
export type StanzaKind = "message" | "receipt" | "iq" | "presence" | "other"

export type StanzaCounts = Readonly<Record<StanzaKind, number>>

/** One stanza a logged-in connection sent, as the server received it. */
export interface SentStanza {
  readonly at: number
  readonly kind: StanzaKind
  readonly tag: string
  /** The stanza's attributes (id, type, xmlns, to, class...), not its content. */
  readonly attrs: Readonly<Record<string, string>>
}

/** Who ended a connection, and why. */
export type Closure =
  /** The client closed the socket, or its side of the network went away (a killed process). */
  | { readonly by: "client" }
  /** The server ended it with a fault injected by a test (`inject`). */
  | { readonly by: "fault"; readonly fault: Fault }
  /** The server answered a newer login of the same device with `<stream:error><conflict type="replaced"/>` (440). */
  | { readonly by: "replaced"; readonly replacedBy: number }
  /** The server could not read what the client sent. */
  | { readonly by: "protocol-error"; readonly error: string }
  /** The simulator itself was closed. */
  | { readonly by: "shutdown" }

/** One logged-in connection of an account: from its `<success>` to its socket's close. */
export interface ConnectionRecord {
  readonly connectionId: number
  readonly phoneNumber: string
  readonly deviceId: number
  /** The device jid it logged in as (`<phone>:<device>@s.whatsapp.net`). */
  readonly jid: string
  /** When the server sent `<success>`. */
  readonly loggedInAt: number
  /** When the server started ending it (fault sent, replaced, shut down); undefined when it did not (the client closed it, or it is open). */
  readonly endedAt: number | undefined
  /** When its socket closed; undefined while it is open. */
  readonly closedAt: number | undefined
  /** Undefined while it is open. */
  readonly closure: Closure | undefined
  /** The WebSocket close code the server saw (1000 a clean close, 1006 a cut without a close frame). */
  readonly wsCloseCode: number | undefined
  /** What it sent after `<success>` until its socket closed, by kind (also after the server ended it). */
  readonly sent: StanzaCounts
  readonly stanzas: ReadonlyArray<SentStanza>
}

/** One side of an overlap: a connection, and what it sent while the other was live too. */
export interface OverlapSide {
  readonly connectionId: number
  readonly jid: string
  readonly loggedInAt: number
  readonly closedAt: number | undefined
  readonly closure: Closure | undefined
  readonly sent: StanzaCounts
  readonly stanzas: ReadonlyArray<SentStanza>
}

/** Two connections of one account that were live at the same time. */
export interface Overlap {
  readonly phoneNumber: string
  /** Both logged in as the same device (what "connection replaced" is about); false for two linked devices. */
  readonly sameDevice: boolean
  /** The later login. */
  readonly from: number
  /** The earlier close; the time of the question when both are still open. */
  readonly until: number
  readonly durationMs: number
  /** Both connections are still open: the overlap is still growing. */
  readonly ongoing: boolean
  /** The connection that logged in first. */
  readonly older: OverlapSide
  /** The connection that logged in second. */
  readonly newer: OverlapSide
}

const kindOf = (tag: string): StanzaKind => {
  switch (tag) {
    case "message":
    case "receipt":
    case "iq":
    case "presence":
      return tag
    case "chatstate":
      // Typing and recording indicators: presence a contact sees.
      return "presence"
    default:
      return "other"
  }
}

const countByKind = (stanzas: ReadonlyArray<SentStanza>): StanzaCounts => {
  const counts = { message: 0, receipt: 0, iq: 0, presence: 0, other: 0 }
  for (const stanza of stanzas) counts[stanza.kind]++
  return counts
}

interface Entry {
  readonly connectionId: number
  readonly phoneNumber: string
  readonly deviceId: number
  readonly jid: string
  readonly loggedInAt: number
  endedAt: number | undefined
  /** Set by the server when it starts ending the connection; the socket closes a little later. */
  ending: Closure | undefined
  closedAt: number | undefined
  closure: Closure | undefined
  wsCloseCode: number | undefined
  /** The latest stanzas only (a long-lived connection would otherwise grow without bound). */
  stanzas: SentStanza[]
  /** Every stanza it sent, counted by kind. */
  readonly counts: { -readonly [K in StanzaKind]: number }
}

/** Stanzas kept per connection; the counts cover all of them. */
const keptStanzas = 1_000

const recordOf = (entry: Entry): ConnectionRecord => ({
  connectionId: entry.connectionId,
  phoneNumber: entry.phoneNumber,
  deviceId: entry.deviceId,
  jid: entry.jid,
  loggedInAt: entry.loggedInAt,
  endedAt: entry.endedAt,
  closedAt: entry.closedAt,
  closure: entry.closure,
  wsCloseCode: entry.wsCloseCode,
  sent: { ...entry.counts },
  stanzas: entry.stanzas.slice()
})

const sideOf = (entry: Entry, from: number, until: number): OverlapSide => {
  const stanzas = entry.stanzas.filter((stanza) => stanza.at >= from && stanza.at < until)
  return {
    connectionId: entry.connectionId,
    jid: entry.jid,
    loggedInAt: entry.loggedInAt,
    closedAt: entry.closedAt,
    closure: entry.closure,
    sent: countByKind(stanzas),
    stanzas
  }
}

/**
 * Every logged-in connection of every account, open or closed, with what it sent: the record tests
 * read to prove that one account never had two live connections.
 */
export const makeConnectionHistory = () => {
  /** In login order. */
  const entries = new Map<number, Entry>()

  const openEntry = (connectionId: number) => {
    const entry = entries.get(connectionId)
    return entry && entry.closedAt === undefined ? entry : undefined
  }

  /** Pairs within each account; entries are in login order, so `older` logged in first. */
  const overlapsOf = (list: ReadonlyArray<Entry>, now: number): Overlap[] => {
    const byAccount = new Map<string, Entry[]>()
    for (const entry of list) {
      const account = byAccount.get(entry.phoneNumber)
      if (account) account.push(entry)
      else byAccount.set(entry.phoneNumber, [entry])
    }
    const found: Overlap[] = []
    for (const account of byAccount.values()) {
      account.forEach((older, index) => {
        for (const newer of account.slice(index + 1)) {
          const from = Math.max(older.loggedInAt, newer.loggedInAt)
          const until = Math.min(older.closedAt ?? now, newer.closedAt ?? now)
          if (until <= from) continue
          found.push({
            phoneNumber: older.phoneNumber,
            sameDevice: older.deviceId === newer.deviceId,
            from,
            until,
            durationMs: until - from,
            ongoing: older.closedAt === undefined && newer.closedAt === undefined,
            older: sideOf(older, from, until),
            newer: sideOf(newer, from, until)
          })
        }
      })
    }
    return found
  }

  /** The server starts ending this connection; the first reason given is the one kept. */
  const ending = (connectionId: number, closure: Closure) => {
    const entry = openEntry(connectionId)
    if (!entry || entry.ending) return
    entry.ending = closure
    entry.endedAt = simulatorNow()
  }

  const select = (phoneNumber: string | undefined) =>
    [...entries.values()].filter((entry) => phoneNumber === undefined || entry.phoneNumber === phoneNumber)

  return {
    /** The server sent `<success>` on this connection. */
    loggedIn: (connectionId: number, phoneNumber: string, deviceId: number, jid: string) => {
      entries.set(connectionId, {
        connectionId,
        phoneNumber,
        deviceId,
        jid,
        loggedInAt: simulatorNow(),
        endedAt: undefined,
        ending: undefined,
        closedAt: undefined,
        closure: undefined,
        wsCloseCode: undefined,
        stanzas: [],
        counts: { message: 0, receipt: 0, iq: 0, presence: 0, other: 0 }
      })
    },
    /** A stanza arrived from this connection; ignored unless it is logged in and open. */
    received: (connectionId: number, node: BinaryNode) => {
      const entry = openEntry(connectionId)
      if (!entry) return
      const kind = kindOf(node.tag)
      entry.counts[kind]++
      entry.stanzas.push({ at: simulatorNow(), kind, tag: node.tag, attrs: { ...node.attrs } })
      if (entry.stanzas.length > keptStanzas) entry.stanzas.shift()
    },
    ending,
    /** The simulator is closing: it ends every open connection. */
    shutdown: () => {
      for (const connectionId of entries.keys()) ending(connectionId, { by: "shutdown" })
    },
    /** Its socket closed: by the server if it was ending it, else by the client. */
    closed: (connectionId: number, wsCloseCode: number) => {
      const entry = openEntry(connectionId)
      if (!entry) return
      entry.closedAt = simulatorNow()
      entry.closure = entry.ending ?? { by: "client" }
      entry.wsCloseCode = wsCloseCode
    },
    /** Every recorded connection of one account (or of all), in login order. */
    connections: (phoneNumber?: string): ReadonlyArray<ConnectionRecord> => select(phoneNumber).map(recordOf),
    /**
     * Every pair of one account's connections whose `[loggedInAt, closedAt)` intervals intersect (an
     * open connection counts as open until now), for one account or all of them.
     */
    overlaps: (phoneNumber?: string): ReadonlyArray<Overlap> =>
      overlapsOf(select(phoneNumber), simulatorNow()),
    /**
     * Forgets closed connections (of one account, or all) and what open ones have sent so far; open
     * connections stay recorded, so an overlap with them is still seen. Returns how many connections it forgot.
     */
    clear: (phoneNumber?: string): number => {
      let forgotten = 0
      for (const entry of select(phoneNumber)) {
        if (entry.closedAt === undefined) {
          entry.stanzas = []
          for (const kind of Object.keys(entry.counts) as Array<StanzaKind>) entry.counts[kind] = 0
        } else {
          entries.delete(entry.connectionId)
          forgotten++
        }
      }
      return forgotten
    }
  }
}

export type ConnectionHistory = ReturnType<typeof makeConnectionHistory>
