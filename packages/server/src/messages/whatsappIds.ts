import type { MessageId } from "@whatisup/domain"
import { createHash } from "node:crypto"

/**
 * The WhatsApp id of an outbound message, derived from the gateway's id: every send of it, after a
 * crash or by another process, is the same message to WhatsApp and to the recipient. Shaped like the
 * ids WhatsApp Web makes (`3EB0` and 20 uppercase hex digits).
 */
export const outboundWhatsAppId = (id: MessageId) =>
  `3EB0${createHash("sha256").update(id).digest("hex").slice(0, 20).toUpperCase()}`
