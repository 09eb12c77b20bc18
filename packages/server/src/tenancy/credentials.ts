import * as crypto from "node:crypto"

/** `wiu_` and the base64url of 32 random bytes; only its SHA-256 is stored. */
export const keyPattern = /^wiu_[A-Za-z0-9_-]{43}$/

export const newKeyPlaintext = () => `wiu_${crypto.randomBytes(32).toString("base64url")}`

/** A key's SHA-256, as the database stores it. */
export const hashKey = (plaintext: string) => crypto.hash("sha256", plaintext, "buffer")

/**
 * A key's SHA-256 in base64: what the key cache is keyed by. Hashed straight to text, it costs a
 * quarter of `hashKey` and its conversion (it runs on every request).
 */
export const keyHashOf = (plaintext: string): KeyHash => crypto.hash("sha256", plaintext, "base64")

export type KeyHash = string

/** The channel on which every process hears that cached credentials must be dropped. */
export const credentialsChangedChannel = "whatisup_credentials_changed"

/**
 * What changed, as the payload on `credentialsChangedChannel` says it: one key (revoked) or one
 * customer (suspended, resumed, its plan changed). Only what it names is read again.
 */
export type CredentialsChange = `key:${string}` | `customer:${string}`

export const keyChanged = (keyId: string): CredentialsChange => `key:${keyId}`

export const customerChanged = (customerId: string): CredentialsChange => `customer:${customerId}`

/** A payload heard on `credentialsChangedChannel`; undefined when it names nothing known (then everything is read again). */
export const credentialsChangeOf = (payload: string): CredentialsChange | undefined =>
  /^(key|customer):\S+$/.test(payload) ? (payload as CredentialsChange) : undefined
