import { Api, type ChannelId, type ChannelStatus } from "@whatisup/domain"
import { Effect } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest } from "effect/http"
import { HttpApiClient } from "effect/http-api"
import { type Polling, waitFor } from "./waits.ts"

export type ApiClient = HttpApiClient.ForApi<typeof Api>

export interface ApiClientOptions {
  /** Sent with every request, as a client would (for example `x-request-id`). */
  readonly headers?: Record<string, string>
}

/**
 * The public API as a customer's program calls it: a client derived from the domain's `Api`, sending
 * `Authorization: Bearer <key>` when given a key. Answers are decoded with the API's own schemas and
 * problems arrive as the domain's tagged errors (`NotFound`, `InvalidState`, `Unauthorized`...).
 */
export const apiClient = (baseUrl: string, key?: string, { headers = {} }: ApiClientOptions = {}) =>
  HttpApiClient.make(Api, {
    baseUrl,
    transformClient: HttpClient.mapRequest((request) => {
      const withHeaders = HttpClientRequest.setHeaders(request, headers)
      return key === undefined ? withHeaders : HttpClientRequest.bearerToken(withHeaders, key)
    })
  }).pipe(Effect.provide(FetchHttpClient.layer))

/** Waits until the channel has this status, and answers the channel as it then was. */
export const waitForStatus = (client: ApiClient, id: ChannelId, status: ChannelStatus, polling?: Polling) =>
  waitFor(
    `channel ${id} is ${status}`,
    client.channels.get({ params: { id } }),
    (channel) => channel.status === status,
    polling
  )

/** Waits until the pairing channel shows a QR (until then the API answers 409 invalid_state), and answers it. */
export const waitForQr = (client: ApiClient, id: ChannelId, polling?: Polling) =>
  Effect.map(
    waitFor(
      `channel ${id} shows a QR`,
      client.channels.qr({ params: { id } }).pipe(
        Effect.map((qr) => ({ qr })),
        Effect.catchTag("InvalidState", (problem) => Effect.succeed({ problem }))
      ),
      (seen) => "qr" in seen,
      polling
    ),
    (seen) => ("qr" in seen ? seen.qr : undefined)!
  )

/** `count` channels named `phone 0`, `phone 1`, …, created through the API; their ids in order. */
export const createChannels = (client: ApiClient, count: number) =>
  Effect.forEach(
    Array.from({ length: count }, (_, i) => i),
    (i) => Effect.map(client.channels.create({ headers: {}, payload: { name: `phone ${i}` } }), (c) => c.id),
    { concurrency: 16 }
  )

/** Connects every channel by QR through the API; says what each connect answered. */
export const connectAll = (client: ApiClient, ids: ReadonlyArray<ChannelId>) =>
  Effect.forEach(ids, (id) => client.channels.connect({ params: { id }, payload: { method: "qr" } }), {
    concurrency: 16
  })
