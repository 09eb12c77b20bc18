import type { ApiKeyId, CustomerId } from "@whatisup/domain"
import type { Effect, Scope } from "effect"
import type { ApiClient } from "../support/api.ts"

/** The customer whose resources another customer must not reach. */
export interface Owner {
  readonly api: string
  readonly key: string
  readonly keyId: ApiKeyId
  readonly customerId: CustomerId
  /** The owner's typed client of the public API. */
  readonly client: ApiClient
}

export interface FixtureResult {
  /** Path parameters naming the owner's resources. */
  readonly params?: Record<string, string>
  readonly body?: unknown
  /** Ids of the owner's that must not appear in another customer's answer. */
  readonly ownedIds: ReadonlyArray<string>
  /** Fails if another customer's call changed the owner's resource. */
  readonly stillIntact?: Effect.Effect<void, unknown>
  /**
   * For a route whose answer does not end (a stream): what another customer does with it, and the
   * checks that nothing of the owner's reaches them, in place of one request.
   */
  readonly intrude?: (intruder: Intruder) => Effect.Effect<void, unknown, Scope.Scope>
}

/** The other customer, who must not reach the owner's resources. */
export interface Intruder {
  readonly api: string
  readonly key: string
}

/** Creates the owner's resources a route acts on; keyed "METHOD /path/{param}" as in the OpenAPI document. */
export type IsolationFixture = (owner: Owner) => Effect.Effect<FixtureResult, unknown>
