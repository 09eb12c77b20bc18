import { getBinaryNodeChild, jidDecode, type BinaryNode, type proto } from "@whiskeysockets/baileys"
import { lidJid, pnJid, type Accounts, type Device } from "./accounts.ts"
import type { Connection } from "./connection.ts"
import { applyFault, type Fault } from "./faults.ts"
import type { ConnectionHistory } from "./history.ts"
import { answerIq, iqError, iqResult, SERVER_JID } from "./iq.ts"
import type { SimulatorLogger } from "./logger.ts"
import type { Messaging } from "./messaging.ts"

interface Session {
  readonly phoneNumber: string
  readonly device: Device
}

/** Logged-in devices: the login itself, then every stanza they send. */
export const makeSessions = (
  accounts: Accounts,
  logger: SimulatorLogger,
  messaging: Pick<Messaging, "answerIq" | "onMessage" | "onReceipt" | "onAck" | "takeOffline">,
  history: Pick<ConnectionHistory, "loggedIn" | "ending">,
  options: { readonly replaceConnections: boolean }
) => {
  const sessions = new Map<Connection, Session>()
  /** Connections a newer login of their device replaced: what they still send is not answered. */
  const replaced = new WeakSet<Connection>()
  let replaceConnections = options.replaceConnections
  /** Stalled phone numbers, with what their connections sent meanwhile, in order. */
  const stalled = new Map<string, Array<() => void>>()
  let loginFault: Fault | undefined

  const login = (connection: Connection, payload: proto.ClientPayload) => {
    const phoneNumber = String(payload.username ?? "")
    const held = stalled.get(phoneNumber)
    if (held) {
      held.push(() => {
        if (connection.isOpen()) login(connection, payload)
      })
      return
    }
    const deviceId = payload.device ?? 0
    const account = accounts.get(phoneNumber)
    const device = account?.devices.get(deviceId)
    const noiseKey = connection.noiseKey()
    if (loginFault) {
      logger.debug(
        { connection: connection.id, phoneNumber, fault: loginFault },
        "login refused by an injected fault"
      )
      return applyFault(connection, loginFault)
    }
    if (!account || !device || !noiseKey || !Buffer.from(device.noiseKey).equals(Buffer.from(noiseKey))) {
      logger.debug({ connection: connection.id, phoneNumber, deviceId }, "unknown device, answering 401")
      return connection.failure(401)
    }
    if (replaceConnections) replaceOlder(connection, phoneNumber, deviceId)
    connection.jid = pnJid(phoneNumber, deviceId)
    sessions.set(connection, { phoneNumber, device })
    const now = String(Math.floor(Date.now() / 1000))
    connection.send({
      tag: "success",
      attrs: { t: now, props: "1", location: "sim", creation: now, lid: lidJid(account.lidUser, deviceId) }
    })
    history.loggedIn(connection.id, phoneNumber, deviceId, connection.jid)
    const waiting = messaging.takeOffline(phoneNumber, deviceId)
    for (const stanza of waiting) connection.send(stanza)
    // Baileys flushes its event buffer and reports receivedPendingNotifications on this.
    connection.send({
      tag: "ib",
      attrs: { from: SERVER_JID },
      content: [{ tag: "offline", attrs: { count: String(waiting.length) } }]
    })
  }

  /** As WhatsApp does: the newest login of a device wins, the older connections get 440 (conflict). */
  const replaceOlder = (newer: Connection, phoneNumber: string, deviceId: number) => {
    for (const [older, session] of sessions) {
      if (session.phoneNumber !== phoneNumber || session.device.id !== deviceId) continue
      logger.debug({ connection: older.id, by: newer.id, phoneNumber, deviceId }, "connection replaced")
      history.ending(older.id, { by: "replaced", replacedBy: newer.id })
      sessions.delete(older)
      replaced.add(older)
      older.replaced()
    }
  }

  const removeCompanion = (session: Session, node: BinaryNode): BinaryNode | undefined => {
    const remove = getBinaryNodeChild(node, "remove-companion-device")
    const target = remove?.attrs.jid ? jidDecode(remove.attrs.jid) : undefined
    if (!target) return undefined
    accounts.get(session.phoneNumber)?.devices.delete(target.device ?? 0)
    return iqResult(node)
  }

  const onStanza = (connection: Connection, node: BinaryNode) => {
    if (replaced.has(connection)) {
      return logger.debug(
        { connection: connection.id, tag: node.tag },
        "stanza from a replaced connection, ignored"
      )
    }
    const session = sessions.get(connection)
    const held = session ? stalled.get(session.phoneNumber) : undefined
    if (held) {
      held.push(() => {
        if (connection.isOpen()) onStanza(connection, node)
      })
      return
    }
    if (node.tag === "iq" && (node.attrs.type === "get" || node.attrs.type === "set")) {
      const answer =
        session && node.attrs.xmlns === "md"
          ? removeCompanion(session, node)
          : ((session && messaging.answerIq(node)) ?? answerIq(session?.device, node))
      if (answer) return connection.send(answer)
      logger.debug(
        { connection: connection.id, xmlns: node.attrs.xmlns, node },
        "unhandled iq, answering 501"
      )
      return connection.send(iqError(node, 501, "feature-not-implemented"))
    }
    if (session && node.tag === "message") {
      return messaging.onMessage(connection, session.phoneNumber, session.device.id, node)
    }
    if (session && node.tag === "receipt") return messaging.onReceipt(connection, session.phoneNumber, node)
    if (session && node.tag === "ack") return messaging.onAck(connection, node)
    logger.debug({ connection: connection.id, tag: node.tag, node }, "unhandled stanza")
  }

  return {
    login,
    onStanza,
    forget: (connection: Connection) => sessions.delete(connection),
    connectionsOf: (phoneNumber: string) =>
      [...sessions]
        .filter(([, session]) => session.phoneNumber === phoneNumber)
        .map(([connection]) => connection),
    /**
     * While stalled, nothing a phone number's devices send is answered (logins, iqs, pings); they
     * are held, in order. Un-stalling answers what was held (to connections still open) and
     * returns how many stanzas that was.
     */
    stall: (phoneNumber: string, on: boolean): number => {
      const held = stalled.get(phoneNumber)
      if (on) {
        if (!held) stalled.set(phoneNumber, [])
        return 0
      }
      stalled.delete(phoneNumber)
      for (const answer of held ?? []) answer()
      return held?.length ?? 0
    },
    /** How many stanzas a stalled phone number's devices have sent since it stalled. */
    held: (phoneNumber: string): number => stalled.get(phoneNumber)?.length ?? 0,
    /** Every later login is answered with this fault instead of `<success>`, until cleared with undefined. */
    setLoginFault: (fault: Fault | undefined) => {
      loginFault = fault
    },
    /** Whether a login of a device that already has a live connection replaces it (440), as WhatsApp does. */
    setReplaceConnections: (on: boolean) => {
      replaceConnections = on
    }
  }
}
