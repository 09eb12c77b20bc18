import type { ChannelId } from "@whatisup/domain"
import { Context, type Effect } from "effect"
import type { Fence, LeaseLost } from "./leases.ts"

/**
 * A channel's WhatsApp login as its transport stores it: the credentials and the signal keys,
 * serialized by the transport, kept encrypted. Writes are fenced by the actor's lease and refused
 * once the channel was logged out or deleted, so a stale socket cannot write a login back.
 */
export interface AuthStateStore {
  readonly read: (type: string, ids: ReadonlyArray<string>) => Effect.Effect<Record<string, string>>
  /** Every change in one transaction, durable before it returns; `null` deletes. */
  readonly write: (
    changes: ReadonlyArray<{ readonly type: string; readonly id: string; readonly value: string | null }>
  ) => Effect.Effect<void, LeaseLost>
}

/** Where channels keep their logins: the port the WhatsApp adapter implements. */
export class AuthStates extends Context.Service<
  AuthStates,
  {
    readonly forChannel: (fence: Fence) => AuthStateStore
    /** Forgets a channel's login; joins the caller's transaction. */
    readonly wipe: (channelId: ChannelId) => Effect.Effect<void>
  }
>()("whatisup/AuthStates") {}
