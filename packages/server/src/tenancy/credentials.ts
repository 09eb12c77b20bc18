import * as crypto from "node:crypto"

/** `wiu_` and the base64url of 32 random bytes; only its SHA-256 is stored. */
export const keyPattern = /^wiu_[A-Za-z0-9_-]{43}$/

export const newKeyPlaintext = () => `wiu_${crypto.randomBytes(32).toString("base64url")}`

export const hashKey = (plaintext: string) => crypto.createHash("sha256").update(plaintext).digest()

/** The channel on which every process hears that cached credentials must be dropped. */
export const credentialsChangedChannel = "whatisup_credentials_changed"
