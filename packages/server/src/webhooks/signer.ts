import * as crypto from "node:crypto"

const secretPrefix = "whsec_"

/** Standard Webhooks signing: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`, one per valid secret. */
export const WebhookSigner = {
  /** A new signing secret: whsec_ and the base64 of 32 random bytes. */
  newSecret: () => `${secretPrefix}${crypto.randomBytes(32).toString("base64")}`,

  /** The secret's key bytes (what follows whsec_, base64-decoded). */
  keyOf: (secret: string) => Buffer.from(secret.slice(secretPrefix.length), "base64"),

  sign: (keys: ReadonlyArray<Buffer>, id: string, timestamp: number, body: string) => {
    const signed = `${id}.${timestamp}.${body}`
    let header = ""
    for (const key of keys) {
      header += `${header === "" ? "" : " "}v1,${crypto.createHmac("sha256", key).update(signed).digest("base64")}`
    }
    return header
  },

  /** The headers of one attempt; `webhook-id` is the event's id, the same on every retry. */
  headers: (keys: ReadonlyArray<Buffer>, id: string, timestamp: number, body: string) => ({
    "content-type": "application/json",
    "user-agent": "WhatIsUp-Webhooks/1.0",
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": WebhookSigner.sign(keys, id, timestamp, body)
  })
}
