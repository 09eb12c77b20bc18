import {
  ApiKeyId,
  AuditEventId,
  ChannelId,
  CustomerId,
  DeliveryId,
  EventId,
  idPrefixes,
  MessageId,
  WebhookEndpointId
} from "@whatisup/domain"
import * as crypto from "node:crypto"

const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
let lastTime = 0
const lastRandom = new Uint8Array(16)

/** Time-sortable ids (ULID layout, lowercase): 10 characters of milliseconds, 16 of randomness, monotonic within a process. */
const rawId = (prefix: string): string => {
  const now = Date.now()
  if (now > lastTime) {
    lastTime = now
    const bytes = crypto.randomBytes(16)
    for (let i = 0; i < 16; i++) lastRandom[i] = bytes[i]! & 31
  } else {
    for (let i = 15; i >= 0; i--) {
      lastRandom[i] = (lastRandom[i]! + 1) & 31
      if (lastRandom[i] !== 0) break
    }
  }
  let time = ""
  let t = lastTime
  for (let i = 0; i < 10; i++) {
    time = alphabet[t % 32] + time
    t = Math.floor(t / 32)
  }
  let random = ""
  for (let i = 0; i < 16; i++) random += alphabet[lastRandom[i]!]
  return `${prefix}_${time}${random}`
}

/** New ids, each branded as the domain's id type of its kind. */
export const newId = {
  customer: () => CustomerId.make(rawId(idPrefixes.customer)),
  apiKey: () => ApiKeyId.make(rawId(idPrefixes.apiKey)),
  channel: () => ChannelId.make(rawId(idPrefixes.channel)),
  event: () => EventId.make(rawId(idPrefixes.event)),
  audit: () => AuditEventId.make(rawId(idPrefixes.audit)),
  webhookEndpoint: () => WebhookEndpointId.make(rawId(idPrefixes.webhook)),
  delivery: () => DeliveryId.make(rawId(idPrefixes.delivery)),
  message: () => MessageId.make(rawId(idPrefixes.message))
}
