import { Context, type Duration, Effect, Layer } from "effect"
import type { AttemptError } from "./attemptErrors.ts"

// placeholder until the ssrf-guard branch lands
export interface DestinationAnswer {
  readonly status: number
  readonly retryAfter: Duration.Duration | undefined
  readonly excerpt: string
  readonly durationMillis: number
}
export class DestinationClient extends Context.Service<
  DestinationClient,
  {
    readonly post: (
      url: string,
      request: { readonly headers: Record<string, string>; readonly body: string }
    ) => Effect.Effect<DestinationAnswer, AttemptError>
  }
>()("whatisup/DestinationClient") {}
export const layerDestinationClient = Layer.succeed(
  DestinationClient,
  DestinationClient.of({
    post: (url, request) =>
      Effect.promise(async () => {
        const started = performance.now()
        const response = await fetch(url, {
          method: "POST",
          headers: request.headers,
          body: request.body,
          redirect: "manual"
        })
        const text = await response.text()
        return {
          status: response.status,
          retryAfter: undefined,
          excerpt: text.slice(0, 4096),
          durationMillis: performance.now() - started
        }
      })
  })
)
