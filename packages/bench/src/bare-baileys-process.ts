/**
 * A plain Node process of bare Baileys sockets, the baseline of the `phones` benchmark: no gateway,
 * no Effect, Signal keys in files (as the gateway keeps them out of its memory, in PostgreSQL), the
 * same socket options the gateway gives. Driven over IPC by the
 * benchmark (`bareBaileys.ts`): it opens a socket for each phone it is told of, says each QR code
 * and each socket that opened, and reads its own memory when asked. Run with `--expose-gc`.
 *
 * Its Baileys is the package it is told to load: `baileys-published` (Baileys 7.0.0-rc14 as
 * published, the target's baseline) or `@whiskeysockets/baileys` (the same version as the gateway
 * patched it, at install).
 */
import type { AuthenticationState, SignalDataTypeMap } from "@whiskeysockets/baileys"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import pino from "pino"
import { answerMemoryRequests } from "./memoryReadings.ts"

/** The Baileys packages the process can load: the same version, as published and as patched. */
const baileysPackages = ["baileys-published", "@whiskeysockets/baileys"] as const
export type BaileysPackage = (typeof baileysPackages)[number]

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
const [url, keysDir, baileysPackage] = process.argv.slice(2)
if (
  url === undefined ||
  keysDir === undefined ||
  !baileysPackages.includes(baileysPackage as BaileysPackage)
) {
  console.error(
    `usage: node --expose-gc bare-baileys-process.ts <simulator ws url> <directory for the keys> <${baileysPackages.join(" | ")}>, forked with IPC`
  )
  process.exit(2)
}
const {
  BufferJSON,
  DisconnectReason,
  initAuthCreds,
  makeWASocket,
  proto
}: typeof import("@whiskeysockets/baileys") = await import(baileysPackage as BaileysPackage)
const report = (message: BareReport) => process.send!(message)
const logger = pino({ level: "silent" })

/**
 * A login as the gateway keeps one, its Signal keys outside the process (here in files of a temporary
 * directory, one a key; the gateway keeps them in PostgreSQL) and its credentials in memory. Baileys'
 * own `useMultiFileAuthState` is not used: it keeps a lock object for every file it ever touched, for
 * the life of the process, which would count against the baseline.
 */
const fileLogin = (dir: string): AuthenticationState => {
  fs.mkdirSync(dir, { recursive: true })
  const file = (type: string, id: string) => path.join(dir, `${type}-${id.replace(/[/:]/g, "_")}.json`)
  return {
    creds: initAuthCreds(),
    keys: {
      get: async <T extends keyof SignalDataTypeMap>(type: T, ids: Array<string>) =>
        Object.fromEntries(
          await Promise.all(
            ids.map(async (id) => {
              const text = await fsp.readFile(file(type, id), "utf8").catch(() => undefined)
              if (text === undefined) return [id, undefined]
              const value = JSON.parse(text, BufferJSON.reviver)
              return [
                id,
                type === "app-state-sync-key" ? proto.Message.AppStateSyncKeyData.fromObject(value) : value
              ]
            })
          )
        ) as { [id: string]: SignalDataTypeMap[T] },
      set: async (data) => {
        const writes: Array<Promise<void>> = []
        for (const [type, values] of Object.entries(data)) {
          for (const [id, value] of Object.entries(values ?? {})) {
            writes.push(
              value === null || value === undefined
                ? fsp.rm(file(type, id), { force: true })
                : fsp.writeFile(file(type, id), JSON.stringify(value, BufferJSON.replacer))
            )
          }
        }
        await Promise.all(writes)
      }
    }
  }
}

/**
 * Each phone's socket, as a program using Baileys keeps it: to send with it. A socket nothing keeps
 * loses the functions only its API holds (sending, groups, communities, newsletters...), which the
 * gateway keeps for every channel.
 */
const sockets = new Map<string, ReturnType<typeof makeWASocket>>()

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
  sockets.set(phone, socket)
}

process.on("message", (request: { readonly kind?: unknown; readonly phone?: unknown }) => {
  if (request.kind === "connect" && typeof request.phone === "string")
    connect(request.phone, fileLogin(path.join(keysDir, request.phone)))
})
report({ kind: "ready" })
