/**
 * One of the `sends` benchmark's baselines in an OS process of its own, as the gateway runs in its
 * own: so that no server shares its event loop, heap or collector with another, the load or the
 * benchmark. Forked with IPC and one argument, the JSON of a `SendsServer`; reports
 * `{ kind: "listening", url }` once it serves, and ends when the benchmark that forked it goes.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Api, type Message } from "@whatisup/domain"
import { Effect, Layer } from "effect"
import { HttpApi, HttpApiBuilder, HttpApiGroup } from "effect/http-api"
import { acceptedAnswer } from "../../server/src/http/messageAnswers.ts"
import { frameworkStack } from "./frameworkStack.ts"
import { answerMemoryRequests } from "./memoryReadings.ts"
import { minimalServer, type Sender, type Storage } from "./minimalSends.ts"

export type SendsServer =
  /** A minimal `node:http` server, storing as `storage` says, or answering without storing when it is absent. */
  | { readonly kind: "minimal"; readonly sender: Sender; readonly storage?: Storage }
  /** The gateway's HTTP stack for the send endpoint, answering `answer` without storing it. */
  | { readonly kind: "framework"; readonly databaseUrl: string; readonly answer: Message }

export interface Listening {
  readonly kind: "listening"
  readonly url: string
}

/**
 * The messages group reduced to its send endpoint, as the gateway's `Api` declares it (payload
 * schema, parse options, and the Authorization, PayloadFields and RequestValidation middleware).
 */
const SendOnlyApi = HttpApi.make("whatisup")
  .add(HttpApiGroup.make("messages").add(Api.groups.messages.endpoints.send))
  .annotateMerge(Api.annotations)

/**
 * (c) The framework's ceiling: the gateway's own HTTP stack for the send endpoint (request pipeline,
 * bearer keys through the real key cache and rate limiter, the schema) whose handler answers `answer`
 * as the gateway's does (`acceptedAnswer`), without storing anything. The database is read only to
 * fill the key cache.
 */
const frameworkServer = (databaseUrl: string, answer: Message) =>
  frameworkStack(
    HttpApiBuilder.layer(SendOnlyApi).pipe(
      Layer.provide(
        HttpApiBuilder.group(SendOnlyApi, "messages", (handlers) =>
          handlers.handle("send", () => Effect.succeed(acceptedAnswer(answer)))
        )
      )
    ),
    databaseUrl
  )

answerMemoryRequests()

const server = JSON.parse(process.argv[2]!) as SendsServer

NodeRuntime.runMain(
  Effect.gen(function* () {
    const url =
      server.kind === "framework"
        ? yield* frameworkServer(server.databaseUrl, server.answer)
        : yield* minimalServer(server.sender, server.storage)
    process.send!({ kind: "listening", url } satisfies Listening)
    return yield* Effect.never
  }).pipe(Effect.scoped)
)
