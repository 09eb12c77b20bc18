import type { ChannelId } from "@whatisup/domain"
import { Context, Data, type Effect, type Queue, type Scope } from "effect"
import type { AuthStateStore } from "./loginStore.ts"

/** What a WhatsApp connection tells its channel. */
export type TransportEvent = Data.TaggedEnum<{
  /** A QR code to show; scanning it with the phone pairs this device. */
  Qr: { readonly qr: string; readonly expiresAt: Date }
  /** The code to type into the phone, when pairing by phone number. */
  PairingCode: { readonly code: string }
  /** Logged in: the channel is connected as this phone number (E.164). */
  Open: { readonly phoneNumber: string }
  /** The connection ended with WhatsApp's disconnect code. */
  Close: { readonly code: number; readonly reason: string }
  /** The server accepted a sent message, or refused it with an error code. */
  ServerAck: { readonly messageId: string; readonly error: number | null }
  /** The recipient's phone got or read a sent message. */
  Receipt: { readonly messageId: string; readonly receipt: "delivered" | "read" }
  /** A message arrived for this channel. */
  Inbound: { readonly messageId: string; readonly from: string; readonly message: unknown }
  /** The login credentials changed and were stored. */
  CredentialsChanged: {}
}>
export const TransportEvent = Data.taggedEnum<TransportEvent>()

export class TransportError extends Data.TaggedError("TransportError")<{
  readonly reason: string
  /** false when trying again cannot help: the channel fails with this reason instead. */
  readonly retryable: boolean
  readonly cause?: unknown
}> {}

export type PairingMethod =
  { readonly method: "qr" } | { readonly method: "pairing_code"; readonly phoneNumber: string }

export interface ConnectOptions {
  readonly channelId: ChannelId
  /** How to pair when the channel has no stored login. */
  readonly pairing: PairingMethod
  /** Where the connection keeps its login: every write is fenced by the channel's lease. */
  readonly authState: AuthStateStore
  /**
   * False once the channel's lease could have lapsed (no I/O: the local deadline): from then on the
   * connection must send nothing, not even a keepalive, and close.
   */
  readonly holdsLease: () => boolean
  /**
   * The actor the connection belongs to: the same object across its reconnects, a new one for the
   * channel's next actor. What a connection keeps for the next one (Baileys' retry counters) is
   * held against it weakly, so it goes when the actor ends.
   */
  readonly actor: object
}

/** One live connection; closing the scope it was opened in closes the socket. */
export interface TransportConnection {
  readonly events: Queue.Dequeue<TransportEvent>
  readonly send: (message: {
    readonly id: string
    readonly to: string
    readonly content: unknown
  }) => Effect.Effect<void, TransportError>
  /** Unlinks this device from the phone's account. */
  readonly logout: Effect.Effect<void, TransportError>
}

/** The port a channel actor talks WhatsApp through: Baileys in production, scripted in tests. */
export class WhatsAppTransport extends Context.Service<
  WhatsAppTransport,
  {
    readonly connect: (
      options: ConnectOptions
    ) => Effect.Effect<TransportConnection, TransportError, Scope.Scope>
  }
>()("whatisup/WhatsAppTransport") {}
