/**
 * A plain Node process of bare Baileys sockets, the baseline of the `phones` benchmark: no gateway,
 * no Effect, logins in memory, the same socket options the gateway gives. Driven over IPC by the
 * benchmark (`bareBaileys.ts`): it opens a socket for each phone it is told of, says each QR code
 * and each socket that opened, and reads its own memory when asked. Run with `--expose-gc`.
 */
import {
  type AuthenticationState,
  DisconnectReason,
  initAuthCreds,
  makeWASocket,
  type SignalDataTypeMap
} from "@whiskeysockets/baileys"
import pino from "pino"
import { answerMemoryRequests } from "./memoryReadings.ts"

export interface ConnectRequest {
  readonly kind: "connect"
  readonly phone: string
}

export type BareReport =
  | { readonly kind: "ready" }
  | { readonly kind: "qr"; readonly phone: string; readonly qr: string }
  | { readonly kind: "open"; readonly phone: string }
  | { readonly kind: "closed"; readonly phone: string; readonly code: number | undefined }

answerMemoryRequests()
const url = process.argv[2]
if (url === undefined) {
  console.error("usage: node --expose-gc bare-baileys-process.ts <simulator ws url>, forked with IPC")
  process.exit(2)
}
const report = (message: BareReport) => process.send!(message)
const logger = pino({ level: "silent" })

/** A login in memory: the credentials and every Signal key, as the objects Baileys gave. */
const memoryLogin = (): AuthenticationState => {
  const keys = new Map<string, unknown>()
  return {
    creds: initAuthCreds(),
    keys: {
      get: async <T extends keyof SignalDataTypeMap>(type: T, ids: Array<string>) =>
        Object.fromEntries(
          ids.flatMap((id) => {
            const value = keys.get(`${type}/${id}`)
            return value === undefined ? [] : [[id, value]]
          })
        ) as { [id: string]: SignalDataTypeMap[T] },
      set: async (data) => {
        for (const [type, values] of Object.entries(data)) {
          for (const [id, value] of Object.entries(values ?? {})) {
            if (value === null || value === undefined) keys.delete(`${type}/${id}`)
            else keys.set(`${type}/${id}`, value)
          }
        }
      }
    }
  }
}

/** Opens a socket for `phone`, and again with the same login when WhatsApp asks for a restart (after pairing). */
const connect = (phone: string, auth: AuthenticationState) => {
  const socket = makeWASocket({
    auth,
    logger,
    waWebSocketUrl: url,
    markOnlineOnConnect: false,
    syncFullHistory: false,
    shouldSyncHistoryMessage: () => false
  })
  socket.ev.on("connection.update", (update) => {
    if (update.qr !== undefined) report({ kind: "qr", phone, qr: update.qr })
    if (update.connection === "open") report({ kind: "open", phone })
    if (update.connection === "close") {
      const code = (update.lastDisconnect?.error as { output?: { statusCode?: number } } | undefined)?.output
        ?.statusCode
      if (code === DisconnectReason.restartRequired) connect(phone, auth)
      else report({ kind: "closed", phone, code })
    }
  })
}

process.on("message", (request: { readonly kind?: unknown; readonly phone?: unknown }) => {
  if (request.kind === "connect" && typeof request.phone === "string") connect(request.phone, memoryLogin())
})
report({ kind: "ready" })
