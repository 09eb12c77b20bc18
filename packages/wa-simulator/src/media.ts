import type { BinaryNode } from "@whiskeysockets/baileys"
import { execFileSync } from "node:child_process"
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual
} from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer, type Server } from "node:https"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { iqResult } from "./iq.ts"

/** The media kinds the simulator encrypts and decrypts (a voice note is audio, a sticker has an image's keys). */
export type MediaKind = "image" | "video" | "audio" | "document" | "sticker"

/** The HKDF info WhatsApp derives each kind's keys with (Baileys' MEDIA_HKDF_KEY_MAPPING). */
const HKDF_INFO: Record<MediaKind, string> = {
  image: "WhatsApp Image Keys",
  video: "WhatsApp Video Keys",
  audio: "WhatsApp Audio Keys",
  document: "WhatsApp Document Keys",
  sticker: "WhatsApp Image Keys"
}

/** The keys a 32-byte media key expands to (HKDF-SHA256, 112 bytes, no salt). */
export const mediaKeys = (mediaKey: Uint8Array, kind: MediaKind) => {
  const expanded = Buffer.from(hkdfSync("sha256", mediaKey, Buffer.alloc(0), HKDF_INFO[kind], 112))
  return {
    iv: expanded.subarray(0, 16),
    cipherKey: expanded.subarray(16, 48),
    macKey: expanded.subarray(48, 80)
  }
}

/** The file a sender uploads: AES-256-CBC of the plaintext, then the first 10 bytes of HMAC-SHA256(iv || ciphertext). */
export const encryptMedia = (plaintext: Uint8Array, kind: MediaKind) => {
  const mediaKey = randomBytes(32)
  const { iv, cipherKey, macKey } = mediaKeys(mediaKey, kind)
  const cipher = createCipheriv("aes-256-cbc", cipherKey, iv)
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()])
  const mac = createHmac("sha256", macKey).update(iv).update(ciphertext).digest().subarray(0, 10)
  const encrypted = Buffer.concat([ciphertext, mac])
  return {
    mediaKey,
    encrypted,
    fileSha256: createHash("sha256").update(plaintext).digest(),
    fileEncSha256: createHash("sha256").update(encrypted).digest()
  }
}

/** The plaintext of an uploaded file, once its MAC checks out; throws when it does not. */
export const decryptMedia = (encrypted: Uint8Array, mediaKey: Uint8Array, kind: MediaKind): Buffer => {
  if (encrypted.length < 26) throw new Error("the media file is too short")
  const { iv, cipherKey, macKey } = mediaKeys(mediaKey, kind)
  const ciphertext = encrypted.subarray(0, encrypted.length - 10)
  const mac = createHmac("sha256", macKey).update(iv).update(ciphertext).digest().subarray(0, 10)
  if (!timingSafeEqual(mac, encrypted.subarray(encrypted.length - 10))) {
    throw new Error("the media file's MAC does not match its media key")
  }
  const decipher = createDecipheriv("aes-256-cbc", cipherKey, iv)
  return Buffer.concat([decipher.update(ciphertext), decipher.final()])
}

/** A self-signed certificate for 127.0.0.1, made by `openssl` (which must be installed). */
const makeCertificate = () => {
  const dir = mkdtempSync(join(tmpdir(), "wa-simulator-media-"))
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem")
      ],
      { stdio: "ignore" }
    )
    return {
      key: readFileSync(join(dir, "key.pem"), "utf8"),
      cert: readFileSync(join(dir, "cert.pem"), "utf8")
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** An upload path Baileys posts to: `/mms/<kind>/<fileEncSha256, url-safe base64>`. */
const UPLOAD_PATH = /^\/mms\/([a-z-]+)\/[A-Za-z0-9_-]+$/

/**
 * The simulator's media host (what `mmg.whatsapp.net` is to WhatsApp), over HTTPS with its own
 * self-signed certificate: linked devices upload encrypted files with the `auth` the `media_conn`
 * iq handed out and download them by their direct path.
 */
export const startMediaHost = async (host: string) => {
  const { key, cert } = makeCertificate()
  const auth = randomBytes(24).toString("base64url")
  const files = new Map<string, Buffer>()
  const uploads: Array<{ readonly path: string; readonly directPath: string }> = []

  /** Stores an encrypted file under a fresh direct path and returns it. */
  const store = (encrypted: Buffer) => {
    const directPath = `/v/t62.7118-24/${randomBytes(16).toString("hex")}.enc`
    files.set(directPath, encrypted)
    return directPath
  }

  const server: Server = createServer({ key, cert }, (request, response) => {
    const url = new URL(request.url ?? "/", "https://media.invalid")
    const answer = (status: number, body: unknown) => {
      response.writeHead(status, { "Content-Type": "application/json" })
      response.end(JSON.stringify(body))
    }
    if (request.method === "POST" && UPLOAD_PATH.test(url.pathname)) {
      if (url.searchParams.get("auth") !== auth) return answer(401, { error: "bad auth" })
      const chunks: Buffer[] = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      request.on("end", () => {
        const directPath = store(Buffer.concat(chunks))
        uploads.push({ path: url.pathname, directPath })
        answer(200, { url: `https://${hostname}${directPath}`, direct_path: directPath })
      })
      return
    }
    const file = request.method === "GET" ? files.get(url.pathname) : undefined
    if (!file) return answer(404, { error: "not found" })
    response.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": file.length })
    response.end(file)
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, host, resolve)
  })
  const hostname = `127.0.0.1:${(server.address() as AddressInfo).port}`

  return {
    /** `127.0.0.1:<port>`, the `hostname` Baileys uploads to and downloads from. */
    hostname,
    /** The host's self-signed certificate (PEM): trust it with NODE_EXTRA_CA_CERTS or an https agent's `ca`. */
    certificate: cert,
    store,
    /** What linked devices uploaded, in order: the path they posted to (`/mms/<kind>/<hash>`) and where it is kept. */
    uploads: (): ReadonlyArray<{ readonly path: string; readonly directPath: string }> => uploads,
    /** An uploaded or stored file by its direct path (or its full URL on this host). */
    file: (directPathOrUrl: string): Buffer | undefined =>
      files.get(directPathOrUrl.startsWith("https://") ? new URL(directPathOrUrl).pathname : directPathOrUrl),
    /** `<media_conn>`: where and with what auth Baileys uploads. */
    answerIq: (node: BinaryNode): BinaryNode | undefined => {
      const first = Array.isArray(node.content) ? node.content[0] : undefined
      if (node.attrs.xmlns !== "w:m" || first?.tag !== "media_conn") return undefined
      return iqResult(node, [
        {
          tag: "media_conn",
          attrs: { auth, ttl: "3600", auth_ttl: "3600", max_buckets: "12" },
          content: [{ tag: "host", attrs: { hostname, maxContentLengthBytes: String(100 * 1024 * 1024) } }]
        }
      ])
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

export type MediaHost = Awaited<ReturnType<typeof startMediaHost>>
