import { Curve, jidDecode } from "@whiskeysockets/baileys"
import type { AddressInfo } from "node:net"
import { WebSocketServer } from "ws"
import { makeAccounts, type Account } from "./accounts.ts"
import { makeCertChain } from "./certificate.ts"
import { makeConnection, type Connection } from "./connection.ts"
import { applyFault, type Fault } from "./faults.ts"
import { makeConnectionHistory, simulatorNow, type ConnectionRecord, type Overlap } from "./history.ts"
import { silentLogger, type SimulatorLogger } from "./logger.ts"
import { makePairing, type LinkedDevice, type PairingCodeOptions, type ScanOptions } from "./pairing.ts"
import {
  makeMessaging,
  type Delivery,
  type DeliveryResult,
  type ReceiptPolicy,
  type ReceivedMessage,
  type RetryRequest,
  type SentReceipt
} from "./messaging.ts"
import { startMediaHost } from "./media.ts"
import { makeSessions } from "./session.ts"

export interface SimulatorOptions {
  /** 0 (the default) picks a free port. */
  readonly port?: number
  readonly host?: string
  readonly logger?: SimulatorLogger
  /** How many QR refs a pairing companion receives (Baileys shows one after the other). */
  readonly qrRefs?: number
  /**
   * As WhatsApp does, a login of a device that already has a live connection replaces it: the older
   * connection gets `<stream:error><conflict type="replaced"/>` (Baileys: 440, connectionReplaced).
   * Off by default: both connections then stay live side by side (and `overlaps` reports them).
   */
  readonly replaceConnections?: boolean
}

export interface Simulator {
  /** `ws://127.0.0.1:<port>`, for Baileys' `waWebSocketUrl`. */
  readonly url: string
  readonly port: number
  /** The fake phone scans a QR a companion shows; resolves once the companion signed and was told to restart. */
  readonly scan: (qr: string, options: ScanOptions) => Promise<LinkedDevice>
  /**
   * The fake phone's user types the 8-character code a companion showed after
   * `requestPairingCode(phoneNumber)`; resolves, as `scan` does, once the companion was told to restart.
   */
  readonly enterPairingCode: (
    phoneNumber: string,
    code: string,
    options?: PairingCodeOptions
  ) => Promise<LinkedDevice>
  readonly account: (phoneNumber: string) => Account | undefined
  /** Open, logged-in connections of a phone number's linked devices. */
  readonly connectionsOf: (phoneNumber: string) => ReadonlyArray<Connection>
  /** Ends every logged-in connection of a phone number with the fault; returns how many it ended. */
  readonly inject: (phoneNumber: string, fault: Fault) => number
  /** Answers every later login with the fault instead of `<success>`; undefined lets logins through again. */
  readonly setLoginFault: (fault: Fault | undefined) => void
  /**
   * Stalls a phone number: its devices' logins, iqs and pings go unanswered (Baileys waits, then
   * times out), until `stall(phoneNumber, false)` answers what was held; returns how many that was.
   */
  readonly stall: (phoneNumber: string, stalled: boolean) => number
  /** How many stanzas a stalled phone number's devices sent since it stalled. */
  readonly held: (phoneNumber: string) => number
  /**
   * Messages linked devices sent to this phone number, as its simulated phone decrypted them
   * (in arrival order; decryption runs just after the server's ack): a message sent again (same id)
   * is listed again, with `resend: true` when it answered the phone's retry receipt.
   */
  readonly received: (phoneNumber: string) => ReadonlyArray<ReceivedMessage>
  /**
   * The plaintext bytes of the file (image, video, audio, document or sticker) a linked device sent
   * to this phone number in message `id`: the simulated phone downloads it from the media host and
   * decrypts it with the message's media key. Undefined when that message has no such file; throws
   * when it does not decrypt.
   */
  readonly receivedMedia: (phoneNumber: string, id: string) => Buffer | undefined
  /** The media host's `127.0.0.1:<port>`: linked devices learn it from the `media_conn` iq. */
  readonly mediaHost: string
  /**
   * What linked devices uploaded to the media host, in order: the path posted to (Baileys'
   * `/mms/image`, `/mms/video`, `/mms/audio`, `/mms/document`, and `/mms/image` for a sticker, then
   * the file's hash) and the direct path it is served from.
   */
  readonly mediaUploads: () => ReadonlyArray<{ readonly path: string; readonly directPath: string }>
  /**
   * The media host's self-signed certificate (PEM). A client trusts it through NODE_EXTRA_CA_CERTS,
   * `tls.setDefaultCACertificates`, or an https agent's `ca` (Baileys' `fetchAgent`, for uploads).
   */
  readonly mediaCertificate: string
  /**
   * How messages to this phone number fare: the server's ack (or an error ack), the delivery
   * receipt, the read receipt and (for a voice note) the played receipt, each normal, dropped or
   * delayed; undefined restores the default.
   */
  readonly setReceipts: (phoneNumber: string, policy: ReceiptPolicy | undefined) => void
  /**
   * The simulated phone of `delivery.from` sends a message to every linked device of
   * `toPhoneNumber`: Signal-encrypted to each (`pkmsg` in a new session, opened with the device's
   * uploaded pre-keys; `msg` once the device answered in it), or in `<plaintext>` when told.
   * The server holds it for each device until the device acknowledges it (its receipt, or a nack):
   * a device offline gets it at its next login, as do devices that never acknowledged it, marked
   * offline (Baileys upserts those as `append`, not `notify`). `copies` sends it again, each copy
   * once the previous one was acknowledged; delivering the same `id` again does the same. Resolves
   * once it went out (or was held): its id, how many open connections got it, and whether some
   * device was offline; rejects when the number has no linked device.
   */
  readonly deliver: (toPhoneNumber: string, delivery: Delivery) => Promise<DeliveryResult>
  /**
   * The simulated phone of `phoneNumber` asks the linked device that sent it message `id` to send
   * it again: a `<receipt type="retry">` (with the phone's keys from `count` 2). Baileys looks the
   * message up (its recent-message cache, else `getMessage`) and, if it finds it, sends it again
   * (listed by `received` with `resend: true`); the request is `acked` once Baileys has handled it.
   * Throws when the phone received no such message.
   */
  readonly sendRetryReceipt: (phoneNumber: string, id: string, count?: number) => RetryRequest
  /**
   * The simulated phone of `phoneNumber` sends a receipt (delivery, read or played) for message `id`
   * it received, now, whatever its receipt policy sent already: a late, repeated or out-of-order one.
   * Throws when the phone received no such message.
   */
  readonly sendReceipt: (phoneNumber: string, id: string, type: "delivery" | "read" | "played") => void
  /** The retry receipts a phone number's simulated phone sent, in order (see `sendRetryReceipt`). */
  readonly retryRequests: (phoneNumber: string) => ReadonlyArray<RetryRequest>
  /** Resolves once the simulated phones have done the Signal work asked of them so far (decryption, encryption). */
  readonly settled: () => Promise<void>
  /** Receipts a phone number's linked devices sent for messages they received (delivery, read...). */
  readonly receiptsFrom: (phoneNumber: string) => ReadonlyArray<SentReceipt>
  /**
   * Messages delivered to a phone number's linked devices that the device has not acknowledged yet
   * (by its receipt or a message ack): each is delivered again, marked offline, at that device's
   * next login, until it is acknowledged.
   */
  readonly pending: (
    phoneNumber: string
  ) => ReadonlyArray<{ readonly id: string; readonly deviceJid: string }>
  /**
   * Receipts (delivery, read, played) for messages a phone number's linked devices sent that the
   * device has not acknowledged yet (its `<ack class="receipt">`): each is delivered again, marked
   * offline, at that device's next login, until it is acknowledged.
   */
  readonly pendingReceipts: (
    phoneNumber: string
  ) => ReadonlyArray<{ readonly id: string; readonly type: string; readonly deviceJid: string }>
  /**
   * The simulator's clock, the one every time in the connection history is on: ms since the epoch,
   * `performance.timeOrigin + performance.now()` (monotonic here, close to `Date.now()` elsewhere).
   */
  readonly now: () => number
  /**
   * Every connection that logged in (got `<success>`) as one of a phone number's devices, or of any
   * phone number when omitted, in login order: open or closed, who closed it, what it sent after login.
   */
  readonly connectionHistory: (phoneNumber?: string) => ReadonlyArray<ConnectionRecord>
  /**
   * Every pair of one phone number's recorded connections that were live at once (their
   * `[loggedInAt, closedAt)` intersect; an open one is open until now), for one phone number or all.
   */
  readonly overlaps: (phoneNumber?: string) => ReadonlyArray<Overlap>
  /**
   * Forgets the closed connections of a phone number (or all) and what the open ones sent so far;
   * open connections stay recorded. Returns how many connections it forgot.
   */
  readonly clearHistory: (phoneNumber?: string) => number
  /** Turns `replaceConnections` (see SimulatorOptions) on or off for later logins. */
  readonly setReplaceConnections: (on: boolean) => void
  readonly close: () => Promise<void>
}

export const startSimulator = async (options: SimulatorOptions = {}): Promise<Simulator> => {
  const logger = options.logger ?? silentLogger
  const staticKeyPair = Curve.generateKeyPair()
  const certChain = makeCertChain(staticKeyPair)
  const accounts = makeAccounts()
  const pairing = makePairing(accounts, { qrRefs: options.qrRefs ?? 6 })
  const media = await startMediaHost(options.host ?? "127.0.0.1")
  const messaging = makeMessaging(
    accounts,
    (phoneNumber) => sessions.connectionsOf(phoneNumber),
    logger,
    media
  )
  const history = makeConnectionHistory()
  const sessions = makeSessions(accounts, logger, messaging, history, {
    replaceConnections: options.replaceConnections ?? false
  })

  const wss = new WebSocketServer({ host: options.host ?? "127.0.0.1", port: options.port ?? 0 })
  await new Promise<void>((resolve, reject) => {
    wss.once("listening", resolve)
    wss.once("error", reject)
  })
  wss.on("connection", (ws) => {
    makeConnection(ws, {
      staticKeyPair,
      certChain,
      logger,
      handlers: {
        onLogin: (connection, payload) =>
          payload.devicePairingData
            ? pairing.offerQr(connection, payload.devicePairingData)
            : sessions.login(connection, payload),
        onStanza: (connection, node) => {
          if (!pairing.onLinkCodeIq(connection, node)) sessions.onStanza(connection, node)
        },
        onReceived: (connection, node) => {
          history.received(connection.id, node)
        },
        onClose: (connection, { code, protocolError }) => {
          sessions.forget(connection)
          pairing.forget(connection)
          if (protocolError) history.ending(connection.id, { by: "protocol-error", error: protocolError })
          history.closed(connection.id, code)
        }
      }
    })
  })

  const port = (wss.address() as AddressInfo).port
  return {
    url: `ws://127.0.0.1:${port}`,
    port,
    scan: pairing.scan,
    enterPairingCode: pairing.enterPairingCode,
    account: accounts.get,
    connectionsOf: sessions.connectionsOf,
    inject: (phoneNumber, fault) => {
      const connections = sessions.connectionsOf(phoneNumber)
      for (const connection of connections) {
        history.ending(connection.id, { by: "fault", fault })
        applyFault(connection, fault)
      }
      return connections.length
    },
    setLoginFault: sessions.setLoginFault,
    stall: sessions.stall,
    held: sessions.held,
    received: messaging.received,
    receivedMedia: messaging.receivedMedia,
    mediaHost: media.hostname,
    mediaUploads: media.uploads,
    mediaCertificate: media.certificate,
    setReceipts: messaging.setPolicy,
    deliver: messaging.deliver,
    sendRetryReceipt: messaging.sendRetryReceipt,
    sendReceipt: messaging.sendReceipt,
    retryRequests: messaging.retryRequests,
    settled: messaging.settled,
    receiptsFrom: messaging.receiptsFrom,
    pending: (phoneNumber) => messaging.pending((jid) => jidDecode(jid)?.user === phoneNumber),
    pendingReceipts: (phoneNumber) =>
      messaging.pendingReceipts((jid) => jidDecode(jid)?.user === phoneNumber),
    now: simulatorNow,
    connectionHistory: history.connections,
    overlaps: history.overlaps,
    clearHistory: history.clear,
    setReplaceConnections: sessions.setReplaceConnections,
    close: () =>
      new Promise<void>((resolve, reject) => {
        messaging.close()
        history.shutdown()
        for (const client of wss.clients) client.terminate()
        wss.close((error) => (error ? reject(error) : media.close().then(resolve, reject)))
      })
  }
}
