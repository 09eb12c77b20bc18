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

/** A message as WhatsApp knows it: its id, whether this device sent it, and the chat's number (E.164). */
export interface WaKey {
  readonly id: string
  readonly fromMe: boolean
  readonly chat: string
}

/** What a message to send holds, its media fetched already. */
export type OutboundContent = (
  | { readonly type: "text"; readonly body: string; readonly previewUrl: boolean }
  | {
      readonly type: "image" | "video" | "sticker"
      readonly bytes: Uint8Array
      readonly mimetype: string
      readonly caption?: string
    }
  | { readonly type: "audio"; readonly bytes: Uint8Array; readonly mimetype: string; readonly voice: boolean }
  | {
      readonly type: "document"
      readonly bytes: Uint8Array
      readonly mimetype: string
      readonly caption?: string
      readonly filename?: string
    }
  | {
      readonly type: "location"
      readonly latitude: number
      readonly longitude: number
      readonly name?: string
      readonly address?: string
    }
  | { readonly type: "reaction"; readonly target: WaKey; readonly emoji: string }
) & { readonly quoted?: { readonly key: WaKey; readonly content: Uint8Array | undefined } }

/** One live connection; closing the scope it was opened in closes the socket. */
export interface TransportConnection {
  readonly events: Queue.Dequeue<TransportEvent>
  /** Builds the WhatsApp message (media uploaded, keys made): proto.Message bytes, stored before the first send. */
  readonly prepare: (to: string, content: OutboundContent) => Effect.Effect<Uint8Array, TransportError>
  /** Sends exactly this prepared message with this WhatsApp id: a resend is the same message. */
  readonly send: (message: {
    readonly id: string
    readonly to: string
    readonly content: Uint8Array
  }) => Effect.Effect<void, TransportError>
  /** Sends read receipts for inbound messages. */
  readonly markRead: (keys: ReadonlyArray<WaKey>) => Effect.Effect<void, TransportError>
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
