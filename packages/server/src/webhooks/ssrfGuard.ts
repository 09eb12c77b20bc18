import { Context, Effect, Layer } from "effect"
import type { DestinationBlocked, DnsFailure } from "./attemptErrors.ts"

// placeholder until the ssrf-guard branch lands
export interface VettedDestination {
  readonly url: URL
  readonly addresses: ReadonlyArray<{ readonly address: string; readonly family: 4 | 6 }>
}
export class SsrfGuard extends Context.Service<
  SsrfGuard,
  { readonly vet: (url: string) => Effect.Effect<VettedDestination, DestinationBlocked | DnsFailure> }
>()("whatisup/SsrfGuard") {}
export const layerSsrfGuard = Layer.succeed(
  SsrfGuard,
  SsrfGuard.of({ vet: (url) => Effect.succeed({ url: new URL(url), addresses: [] }) })
)
