import type { ChannelId } from "@whatisup/domain"
import { Context, type Effect, type Scope } from "effect"
import type { Fence, LeaseLost } from "./leases.ts"
import type { InboundMessage, TransportConnection } from "./transport.ts"

/** What a connection reported of sent messages: the server's ack (or error ack), the recipient's receipts. */
export type StatusReport =
  | { readonly _tag: "ServerAck"; readonly whatsappId: string; readonly error: number | null }
  | {
      readonly _tag: "Receipt"
      readonly whatsappId: string
      readonly receipt: "delivered" | "read" | "played"
    }

/**
 * What a channel hands its messages to: the outbox and the inbox, behind a port, so that channels
 * do not depend on the capability built on them.
 */
export class ChannelMessaging extends Context.Service<
  ChannelMessaging,
  {
    /** Sends the channel's queue through the connection while it is open (until the scope closes). */
    readonly drain: (
      fence: Fence,
      connection: TransportConnection,
      holdsLease: () => boolean
    ) => Effect.Effect<void, never, Scope.Scope>
    /** Applies a batch of acks and receipts, fenced by the lease. */
    readonly report: (fence: Fence, reports: ReadonlyArray<StatusReport>) => Effect.Effect<unknown, LeaseLost>
    /** Stores what arrived, before WhatsApp is told it did; not fenced. */
    readonly storeInbound: (
      channelId: ChannelId,
      messages: ReadonlyArray<InboundMessage>
    ) => Effect.Effect<void>
    /** A sent message's stored content, for the recipient's retry receipts; not fenced. */
    readonly sentContent: (channelId: ChannelId, whatsappId: string) => Effect.Effect<Uint8Array | undefined>
    /** In the caller's transaction: the channel is deleted or logged out, its queued messages fail. */
    readonly channelGone: (
      channelId: ChannelId,
      reason: "channel_deleted" | "channel_logged_out"
    ) => Effect.Effect<void>
  }
>()("whatisup/ChannelMessaging") {}
