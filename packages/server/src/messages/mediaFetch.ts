import { maxMediaBytes } from "@whatisup/domain"
import { Context, Data, Effect, Layer } from "effect"
import { Agent, request } from "undici"
import { pinnedLookup } from "../webhooks/destinationClient.ts"
import { refusalOf, SsrfGuard } from "../webhooks/ssrfGuard.ts"

export type MediaKind = keyof typeof maxMediaBytes

/** Why a message's media could not be had: the link is refused or failed, or the file is too large. */
export class MediaFetchFailed extends Data.TaggedError("MediaFetchFailed")<{
  readonly reason: "media_fetch_refused" | "media_too_large"
  readonly detail: string
}> {}

export interface FetchedMedia {
  readonly bytes: Uint8Array
  /** The type the link answered with (its `codecs` parameter kept), or the kind's default when it named none. */
  readonly mimetype: string
}

const mediaTypePattern = /^[a-z0-9!#$&^_.+-]{1,64}\/[a-z0-9!#$&^_.+-]{1,64}$/
const codecsPattern = /(?:^|;)\s*codecs\s*=\s*"?([A-Za-z0-9.,+ -]{1,64}?)"?\s*(?:;|$)/i
// a parameter value of these characters needs no quotes (RFC 2045's token)
const tokenPattern = /^[A-Za-z0-9.+-]+$/

/**
 * The media type a file is sent as: the link's `type/subtype`, and its `codecs` parameter when it has
 * one (a voice note is `audio/ogg; codecs=opus`, as WhatsApp's own are); nothing else of the header,
 * which the link's server wrote. The kind's default when the link names no type of its own.
 */
export const mimetypeOf = (contentType: string | undefined, kind: MediaKind) => {
  const [essence = "", ...parameters] = (contentType ?? "").split(";")
  const base = essence.trim().toLowerCase()
  if (base === "" || base === "application/octet-stream" || !mediaTypePattern.test(base)) {
    return fallbackTypes[kind]
  }
  const codecs = codecsPattern.exec(parameters.join(";"))?.[1]?.trim()
  if (codecs === undefined || codecs === "") return base
  return `${base}; codecs=${tokenPattern.test(codecs) ? codecs : `"${codecs}"`}`
}

const connectTimeoutMs = 5_000
const timeoutMs = 60_000

/** What a media type defaults to when the link names none. */
const fallbackTypes: Record<MediaKind, string> = {
  image: "image/jpeg",
  video: "video/mp4",
  audio: "audio/ogg; codecs=opus",
  document: "application/octet-stream",
  sticker: "image/webp"
}

/**
 * Fetches the file of an outbound message's media link, through the guard webhooks go through (every
 * address public, the connection pinned to the vetted one, no redirects), and no more than the kind's
 * size limit: a larger file is refused from its Content-Length, or as soon as it has sent more.
 */
export class MediaFetcher extends Context.Service<
  MediaFetcher,
  { readonly fetch: (link: string, kind: MediaKind) => Effect.Effect<FetchedMedia, MediaFetchFailed> }
>()("whatisup/MediaFetcher") {}

const refused = (detail: string) => new MediaFetchFailed({ reason: "media_fetch_refused", detail })

export const layerMediaFetcher = Layer.effect(
  MediaFetcher,
  Effect.gen(function* () {
    const guard = yield* SsrfGuard
    return MediaFetcher.of({
      fetch: (link, kind) =>
        Effect.gen(function* () {
          const vetted = yield* guard
            .vet(link)
            .pipe(Effect.mapError((error) => refused(refusalOf(error).detail)))
          const target = vetted.addresses[0]!
          const limit = maxMediaBytes[kind]
          const tooLarge = () =>
            new MediaFetchFailed({
              reason: "media_too_large",
              detail: `The file at the link is larger than ${limit} bytes, the most WhatsApp takes for ${kind === "image" ? "an image" : `a ${kind}`}`
            })
          return yield* Effect.tryPromise({
            try: async (signal) => {
              const agent = new Agent({
                connect: { timeout: connectTimeoutMs, lookup: pinnedLookup(target.address, target.family) },
                headersTimeout: timeoutMs,
                bodyTimeout: timeoutMs
              })
              try {
                const response = await request(vetted.url, {
                  method: "GET",
                  dispatcher: agent,
                  signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)])
                })
                // the body is read below or given up on; an abort after that is no one's error
                response.body.on("error", () => undefined)
                if (response.statusCode < 200 || response.statusCode > 299) {
                  response.body.destroy()
                  throw refused(`The link answered HTTP ${response.statusCode}`)
                }
                const length = Number(response.headers["content-length"] ?? Number.NaN)
                if (length > limit) {
                  response.body.destroy()
                  throw tooLarge()
                }
                const chunks: Array<Buffer> = []
                let size = 0
                for await (const chunk of response.body as AsyncIterable<Buffer>) {
                  size += chunk.length
                  if (size > limit) {
                    response.body.destroy()
                    throw tooLarge()
                  }
                  chunks.push(chunk)
                }
                const type = response.headers["content-type"]
                return {
                  bytes: Buffer.concat(chunks, size),
                  mimetype: mimetypeOf(Array.isArray(type) ? type[0] : type, kind)
                }
              } finally {
                agent.destroy().catch(() => undefined)
              }
            },
            catch: (error) =>
              error instanceof MediaFetchFailed
                ? error
                : refused(
                    `The link could not be fetched: ${error instanceof Error ? error.message : String(error)}`
                  )
          })
        })
    })
  })
)
