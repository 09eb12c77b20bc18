import * as NodeStream from "@effect/platform-node/NodeStream"
import {
  DEF_MEDIA_HOST,
  downloadContentFromMessage,
  type MediaType,
  type proto
} from "@whiskeysockets/baileys"
import { Data, Effect, type Stream } from "effect"
import { createHash } from "node:crypto"
import { Transform } from "node:stream"
import { contentField, plainMessage, unwrapMessage } from "./inboundContent.ts"

export class MediaDownloadError extends Data.TaggedError("MediaDownloadError")<{
  /**
   * `no_media`: the message carries no file; `expired`: WhatsApp no longer has it (404/410);
   * `failed`: the download or its decryption failed, or the bytes are not the file the message names.
   */
  readonly reason: "no_media" | "expired" | "failed"
  readonly cause?: unknown
}> {}

/** A file being downloaded: its bytes, decrypted, as they arrive, and what the message says of it. */
export interface MediaDownload {
  readonly stream: Stream.Stream<Uint8Array, MediaDownloadError>
  readonly mimetype: string
  readonly fileLength?: number
  readonly fileName?: string
}

export interface MediaDownloadOptions {
  /**
   * The host files are downloaded from (`mmg.whatsapp.net` unless told; the simulator's in tests).
   * The sender writes the message, so the host it names is never used: only its path is.
   */
  readonly host?: string
}

/** The media fields of a message, with the kind their keys are derived for. */
const mediaTypes: Record<string, MediaType> = {
  imageMessage: "image",
  videoMessage: "video",
  ptvMessage: "ptv",
  audioMessage: "audio",
  documentMessage: "document",
  stickerMessage: "sticker"
}

/** Passes the bytes through and fails at the end when their SHA-256 is not the one the message named. */
const checkedAgainst = (sha256: Uint8Array) => {
  const hash = createHash("sha256")
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk)
      done(null, chunk)
    },
    flush(done) {
      done(
        hash.digest().equals(sha256)
          ? null
          : new Error("the downloaded file's SHA-256 is not the one its message names")
      )
    }
  })
}

/**
 * Downloads and decrypts the file an inbound message carries (its stored `proto.Message` bytes),
 * with no socket: the message holds the path and the media key. Fails with `MediaDownloadError`
 * when it carries none or the host refuses; the stream fails if the bytes turn out wrong.
 * The stream must be run to its end (or interrupted): it holds the HTTP response open.
 */
export const downloadMedia = (content: Uint8Array, options: MediaDownloadOptions = {}) =>
  Effect.gen(function* () {
    const message = unwrapMessage(
      yield* Effect.try({
        try: () => plainMessage(content),
        catch: (cause) => new MediaDownloadError({ reason: "failed", cause })
      })
    )
    const field = contentField(message)
    const type = field === undefined ? undefined : mediaTypes[field]
    const file =
      type === undefined ? undefined : (message[field as keyof proto.IMessage] as proto.Message.IImageMessage)
    const path = file?.directPath || (file?.url ? pathOf(file.url) : undefined)
    if (type === undefined || !file?.mediaKey?.length || path === undefined) {
      return yield* new MediaDownloadError({ reason: "no_media" })
    }
    // written after the host, anything but a path (`:8443/...`, `.example.com/...`) would name another host
    if (!path.startsWith("/")) {
      return yield* new MediaDownloadError({
        reason: "failed",
        cause: "the message's media path is not a path"
      })
    }
    const decrypted = yield* Effect.tryPromise({
      try: () =>
        downloadContentFromMessage({ mediaKey: file.mediaKey!, directPath: path, url: null }, type, {
          host: options.host ?? DEF_MEDIA_HOST
        }),
      catch: (cause) => {
        const status = (cause as { output?: { statusCode?: number } }).output?.statusCode
        return new MediaDownloadError({
          reason: status === 404 || status === 410 ? "expired" : "failed",
          cause
        })
      }
    })
    const readable = file.fileSha256?.length ? decrypted.pipe(checkedAgainst(file.fileSha256)) : decrypted
    // an error on the way (decryption) reaches the readable the stream reads
    if (readable !== decrypted) decrypted.once("error", (error) => readable.destroy(error))
    const download: MediaDownload = {
      stream: NodeStream.fromReadable({
        evaluate: () => readable,
        onError: (cause) => new MediaDownloadError({ reason: "failed", cause })
      }),
      mimetype: file.mimetype || "application/octet-stream",
      ...(file.fileLength != null ? { fileLength: Number(file.fileLength) } : {}),
      ...((file as proto.Message.IDocumentMessage).fileName
        ? { fileName: (file as proto.Message.IDocumentMessage).fileName! }
        : {})
    }
    return download
  })

/** The path (and query) of a media URL: the part of it a download may use. */
const pathOf = (url: string) => {
  try {
    const parsed = new URL(url)
    return parsed.pathname + parsed.search
  } catch {
    return undefined
  }
}
