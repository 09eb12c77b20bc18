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
  /**
   * The recipient's phone got, read, or (a voice note) played a sent message: from a transport that
   * does not hand receipts to `storeReceipts` (Baileys does, when given one).
   */
  Receipt: MessageReceipt
  /** The login credentials changed and were stored. */
  CredentialsChanged: {}
}>
export const TransportEvent = Data.taggedEnum<TransportEvent>()

/** What a recipient's receipt says of a message the channel sent: its phone got, read, or (a voice note) played it. */
export interface MessageReceipt {
  readonly messageId: string
  readonly receipt: "delivered" | "read" | "played"
}

export class TransportError extends Data.TaggedError("TransportError")<{
  readonly reason: string
  /**
   * false when trying again cannot help: a connect fails the channel, a prepare or send fails the
   * message, with this reason.
   */
  readonly retryable: boolean
  readonly cause?: unknown
}> {}

/** A WhatsApp message as a key: its id, whether we sent it, and the chat (E.164) it is in. */
export interface WaKey {
  readonly id: string
  readonly fromMe: boolean
  readonly chat: string
}

/** A message WhatsApp delivered to the channel, as the transport hands it over to be stored. */
export interface InboundMessage {
  readonly whatsappId: string
  /** The sender (E.164); a LID jid (`...@lid`) in the rare case WhatsApp hides the number and no mapping is known. */
  readonly from: string
  /** The chat it arrived in (E.164): the sender's, since only one-to-one chats are stored. */
  readonly chat: string
  readonly timestamp: Date
  /** The name the sender set in WhatsApp. */
  readonly pushName?: string
  /** WhatsApp's `proto.Message`, encoded: what `describeInbound` and `downloadMedia` read. */
  readonly content: Uint8Array
  /** `append` when it waited for the channel to log in (offline), `notify` when it arrived live. */
  readonly type: "notify" | "append"
}

/** A file to send: the bytes were fetched already (a link went through the SSRF guard). */
interface OutboundFile {
  readonly bytes: Uint8Array
  readonly mimetype: string
}

/** What the gateway asks the transport to send, before it becomes a WhatsApp message. */
export type OutboundContent = (
  | { readonly type: "text"; readonly body: string; readonly previewUrl: boolean }
  | ({ readonly type: "image" | "video"; readonly caption?: string } & OutboundFile)
  | ({ readonly type: "sticker" } & OutboundFile)
  | ({ readonly type: "audio"; readonly voice: boolean } & OutboundFile)
  | ({ readonly type: "document"; readonly caption?: string; readonly filename?: string } & OutboundFile)
  | {
      readonly type: "location"
      readonly latitude: number
      readonly longitude: number
      readonly name?: string
      readonly address?: string
    }
  /** An empty emoji removes the reaction. */
  | { readonly type: "reaction"; readonly target: WaKey; readonly emoji: string }
) & {
  /** The message this one replies to, with its content when known (shown quoted on the phone). */
  readonly quoted?: { readonly key: WaKey; readonly content: Uint8Array | undefined }
}

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
  /**
   * Stores messages WhatsApp delivered; WhatsApp is told they arrived (receipt) only once this
   * succeeded. On failure they stay unacknowledged, the connection closes (500) and WhatsApp
   * delivers them again at the next login. Messages from the account's own devices, groups, status
   * and broadcasts are not handed over (and acknowledged as usual).
   */
  readonly storeInbound: (messages: ReadonlyArray<InboundMessage>) => Effect.Effect<void, unknown>
  /**
   * Stores what recipients' receipts say of sent messages; WhatsApp is told a receipt arrived only
   * once this succeeded. On failure the receipt stays unacknowledged, the connection closes (500)
   * and WhatsApp delivers it again at the next login. Receipts that arrive together are handed over
   * concurrently, each call waiting for its own. Without it, receipts come as `Receipt` events,
   * acknowledged as they arrive.
   */
  readonly storeReceipts?: (receipts: ReadonlyArray<MessageReceipt>) => Effect.Effect<void, unknown>
  /** The stored `proto.Message` of a message sent with this id, to answer a recipient's retry receipt. */
  readonly sentContent: (whatsappId: string) => Effect.Effect<Uint8Array | undefined>
}

/** One live connection; closing the scope it was opened in closes the socket. */
export interface TransportConnection {
  readonly events: Queue.Dequeue<TransportEvent>
  /**
   * Builds the WhatsApp message (`proto.Message`, encoded) for `to` (E.164): media are encrypted and
   * uploaded here, so the result, stored, is the whole message, media keys included.
   */
  readonly prepare: (to: string, content: OutboundContent) => Effect.Effect<Uint8Array, TransportError>
  /** Sends a prepared message with this WhatsApp id: sent again, it is the same message, not a second one. */
  readonly send: (message: {
    readonly id: string
    readonly to: string
    readonly content: Uint8Array
  }) => Effect.Effect<void, TransportError>
  /** Tells the senders of these inbound messages that they were read. */
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
