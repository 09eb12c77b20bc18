import { Api, Caller, type SendMessage } from "@whatisup/domain"
import { Effect, Option } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { GatewayConfigService } from "../config/config.ts"
import { MessageStateConflict } from "../messages/errors.ts"
import { downloadMedia, type MediaDownloadError } from "../whatsapp/media.ts"
import { MediaLinkRefused } from "../messages/errors.ts"
import { MessageIntake } from "../messages/intake.ts"
import { type MessageAccess, MessageLog } from "../messages/messageLog.ts"
import { refusalOf, SsrfGuard } from "../webhooks/ssrfGuard.ts"
import { markReplayed } from "./idempotency.ts"
import { acceptedAnswer } from "./messageAnswers.ts"
import { answerProblems } from "./problems.ts"

/** Why a message's file cannot be had, as the API says it. */
const mediaRefusal = (status: string, error: MediaDownloadError) =>
  new MessageStateConflict({
    status,
    detail:
      error.reason === "no_media"
        ? "This message has no file: only inbound images, videos, audio, documents and stickers do"
        : error.reason === "expired"
          ? "WhatsApp no longer has this file (it keeps media for a limited time)"
          : "The file could not be downloaded from WhatsApp; retry later"
  })

/** A file name safe inside a Content-Disposition header. */
const dispositionOf = (fileName: string | undefined) =>
  fileName === undefined
    ? undefined
    : `attachment; filename="${fileName.replace(/[^\x20-\x7e]|["\\]/gu, "_")}"; filename*=UTF-8''${encodeURIComponent(fileName)}`

/** The media type a sender wrote, when a header can carry it as one; else application/octet-stream. */
const contentTypeOf = (mimetype: string) =>
  /^[\w!#$&^.+-]+\/[\w!#$&^.+-]+(?:;[\x20-\x7e]*)?$/u.test(mimetype) ? mimetype : "application/octet-stream"

const accessOf = (caller: Caller["Service"]): MessageAccess => ({
  customerId: caller.customerId,
  onlyChannel: caller.channelId
})

/** The media link a send carries, with the field that carries it. */
const linkOf = (message: SendMessage) => {
  switch (message.type) {
    case "image":
    case "video":
    case "audio":
    case "document":
    case "sticker":
      return {
        path: `body.${message.type}.link`,
        link: (message as unknown as Record<string, { readonly link: string }>)[message.type]!.link
      }
    default:
      return undefined
  }
}

export const layerMessagesHttp = HttpApiBuilder.group(Api, "messages", (handlers) =>
  Effect.gen(function* () {
    const intake = yield* MessageIntake
    const log = yield* MessageLog
    const guard = yield* SsrfGuard
    const config = yield* GatewayConfigService
    const mediaHost = Option.match(config.waMediaHost, { onNone: () => ({}), onSome: (host) => ({ host }) })
    /** A media link is vetted before the send is queued (and again when it is fetched): no transaction waits on DNS. */
    const vet = (media: { readonly path: string; readonly link: string }) =>
      guard
        .vet(media.link)
        .pipe(Effect.mapError((refused) => new MediaLinkRefused({ path: media.path, ...refusalOf(refused) })))
    const withAccess = <A, E, R>(
      use: (access: MessageAccess, caller: Caller["Service"]) => Effect.Effect<A, E, R>
    ) => Effect.flatMap(Caller, (caller) => use(accessOf(caller), caller)).pipe(answerProblems)
    return handlers
      .handle("send", (request) =>
        withAccess((access, caller) => {
          // in plain steps, no generator: it runs on every send
          const accept = Effect.flatMap(
            intake.send({
              customerId: caller.customerId,
              apiKeyId: caller.keyId,
              onlyChannel: access.onlyChannel,
              channelId: request.params.id,
              message: request.payload,
              idempotencyKey: request.headers["idempotency-key"]
            }),
            (accepted) =>
              accepted.replayed
                ? Effect.as(markReplayed, acceptedAnswer(accepted.message))
                : Effect.succeed(acceptedAnswer(accepted.message))
          )
          const media = linkOf(request.payload)
          return media === undefined ? accept : Effect.andThen(vet(media), accept)
        })
      )
      .handle("list", ({ params, query }) =>
        withAccess((access) => {
          const { limit, cursor, ...filter } = query
          return log.list(access, params.id, { limit, cursor, ...filter })
        })
      )
      .handle("get", ({ params }) => withAccess((access) => log.get(access, params.id)))
      .handle("media", ({ params }) =>
        withAccess((access) =>
          Effect.gen(function* () {
            const { message, content } = yield* log.inbound(access, params.id)
            const file = yield* downloadMedia(content, mediaHost).pipe(
              Effect.mapError((error) => mediaRefusal(message.status, error))
            )
            const disposition = message.type === "document" ? dispositionOf(file.fileName) : undefined
            return HttpServerResponse.stream(file.stream, {
              contentType: contentTypeOf(file.mimetype),
              headers: {
                "cache-control": "private, no-store",
                "x-content-type-options": "nosniff",
                ...(disposition === undefined ? {} : { "content-disposition": disposition })
              }
            })
          })
        )
      )
      .handle("read", ({ params }) => withAccess((access) => log.markRead(access, params.id)))
  })
)
