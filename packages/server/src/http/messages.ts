import { Api, Caller, type SendMessage } from "@whatisup/domain"
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { MediaLinkRefused } from "../messages/errors.ts"
import { MessageIntake } from "../messages/intake.ts"
import { type MessageAccess, MessageLog } from "../messages/messageLog.ts"
import { refusalOf, SsrfGuard } from "../webhooks/ssrfGuard.ts"
import { markReplayed } from "./idempotency.ts"
import { answerProblems } from "./problems.ts"

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
    /** A media link is vetted before the send is queued (and again when it is fetched): no transaction waits on DNS. */
    const vet = (message: SendMessage) => {
      const media = linkOf(message)
      return media === undefined
        ? Effect.void
        : guard.vet(media.link).pipe(
            Effect.mapError((refused) => new MediaLinkRefused({ path: media.path, ...refusalOf(refused) })),
            Effect.asVoid
          )
    }
    const withAccess = <A, E, R>(use: (access: MessageAccess, caller: Caller["Service"]) => Effect.Effect<A, E, R>) =>
      Effect.flatMap(Caller, (caller) => use(accessOf(caller), caller)).pipe(answerProblems)
    return handlers
      .handle("send", (request) =>
        withAccess((access, caller) =>
          Effect.gen(function* () {
            yield* vet(request.payload)
            const accepted = yield* intake.send({
              customerId: caller.customerId,
              apiKeyId: caller.keyId,
              onlyChannel: access.onlyChannel,
              channelId: request.params.id,
              message: request.payload,
              idempotencyKey: request.headers["idempotency-key"]
            })
            if (accepted.replayed) yield* markReplayed
            return accepted.message
          })
        )
      )
      .handle("list", ({ params, query }) =>
        withAccess((access) => {
          const { limit, cursor, ...filter } = query
          return log.list(access, params.id, { limit, cursor, ...filter })
        })
      )
      .handle("get", ({ params }) => withAccess((access) => log.get(access, params.id)))
      .handle("media", ({ params }) =>
        withAccess((access) => Effect.flatMap(log.inbound(access, params.id), () => Effect.void))
      )
      .handle("read", ({ params }) => withAccess((access) => log.markRead(access, params.id)))
  })
)
