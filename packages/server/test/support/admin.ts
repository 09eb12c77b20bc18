import { type PlanPatch } from "@whatisup/domain"
import { AdminClient, layerAdminClient } from "@whatisup/cli/adminClient"
import { Context, Effect, Layer } from "effect"
import { apiClient } from "./api.ts"

/** Where the operator reaches a gateway: its admin listener and the operator token. */
export interface AdminEndpoint {
  readonly admin: string
  readonly adminToken: string | undefined
}

/**
 * The operator's RPC client for a gateway, open until the scope closes (the client's protocol must
 * outlive each call, so it is built into the caller's scope rather than around one call).
 */
export const adminOf = (gateway: AdminEndpoint) =>
  Effect.map(
    Layer.build(layerAdminClient({ url: gateway.admin, token: gateway.adminToken, tokenSource: "test" })),
    Context.get(AdminClient)
  )

export interface NewCustomer {
  readonly name?: string
  /** Plan fields to set; the API rate defaults to 10,000 requests a second so tests are not rate limited. */
  readonly plan?: typeof PlanPatch.Type
}

/**
 * A new customer on a gateway, created by the operator: the customer, its first API key (plaintext
 * in `key`), their ids, and the public API's typed client for that key on this gateway.
 */
export const newCustomer = (
  gateway: AdminEndpoint & { readonly api: string },
  { name = "WhatsApp user", plan = {} }: NewCustomer = {}
) =>
  Effect.gen(function* () {
    const admin = yield* adminOf(gateway)
    const { customer, api_key } = yield* admin.CreateCustomer({
      name,
      plan: { api_requests_per_second: 10_000, ...plan }
    })
    return {
      customer,
      apiKey: api_key,
      customerId: customer.id,
      keyId: api_key.id,
      key: api_key.key,
      client: yield* apiClient(gateway.api, api_key.key)
    }
  }).pipe(Effect.scoped)
