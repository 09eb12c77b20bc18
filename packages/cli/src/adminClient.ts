import { AdminRpcs, OperatorUnauthorized } from "@whatisup/domain"
import { Context, Effect, Layer } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest } from "effect/http"
import { RpcClient, RpcClientError, RpcSerialization } from "effect/rpc"
import * as fs from "node:fs"
import * as path from "node:path"

export interface AdminTarget {
  readonly url: string
  readonly token: string | undefined
  readonly tokenSource: string
}

/** Where the gateway's admin listener is and the operator token, from the environment or the data dir. */
export const adminTarget = (env: NodeJS.ProcessEnv): AdminTarget => {
  const url = (env.WHATISUP_ADMIN_URL ?? "http://127.0.0.1:8081").replace(/\/+$/, "")
  if (env.WHATISUP_ADMIN_TOKEN)
    return { url, token: env.WHATISUP_ADMIN_TOKEN, tokenSource: "WHATISUP_ADMIN_TOKEN" }
  const file = path.resolve(env.WHATISUP_DATA_DIR ?? "./.data", "admin-token")
  const token = fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim() : undefined
  return { url, token, tokenSource: file }
}

export class AdminClient extends Context.Service<
  AdminClient,
  RpcClient.FromGroup<typeof AdminRpcs, RpcClientError.RpcClientError>
>()("whatisup/cli/AdminClient") {}

/** The listener refuses a bad token with a bare 401 before it reads the call: an error, not a body to decode. */
const layerHttpClient = Layer.effect(
  HttpClient.HttpClient,
  Effect.map(HttpClient.HttpClient, HttpClient.filterStatusOk)
).pipe(Layer.provide(FetchHttpClient.layer))

export const layerAdminClient = (target: AdminTarget) =>
  Layer.effect(AdminClient, RpcClient.make(AdminRpcs)).pipe(
    Layer.provide(
      RpcClient.layerProtocolHttp({
        url: `${target.url}/rpc`,
        transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(target.token ?? ""))
      })
    ),
    Layer.provide([RpcSerialization.layerNdjson, layerHttpClient])
  )

/** The admin listener answered 401: it refused the operator token before reading the call. */
export const isTokenRefused = (error: unknown) => {
  if ((error as { readonly _tag?: unknown } | undefined)?._tag !== "RpcClientError") return false
  const reason = (error as RpcClientError.RpcClientError).reason as {
    readonly _tag?: string
    readonly kind?: string
    readonly cause?: unknown
  }
  const status = (reason.cause as { readonly response?: { readonly status?: number } } | undefined)?.response
    ?.status
  return reason._tag === "HttpError" && reason.kind === "StatusCodeError" && status === 401
}

/** One admin call; a token the listener refuses is the RPC's own `OperatorUnauthorized`. */
export const call = <A, E>(f: (client: AdminClient["Service"]) => Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    return yield* f(yield* AdminClient).pipe(
      Effect.catchIf(isTokenRefused, () =>
        Effect.fail(new OperatorUnauthorized({ message: "the operator token is missing or wrong" }))
      )
    )
  })
