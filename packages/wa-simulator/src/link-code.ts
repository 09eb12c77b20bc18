import {
  aesDecryptCTR,
  aesDecryptGCM,
  aesEncryptCTR,
  Curve,
  derivePairingCodeKey,
  hkdf,
  type KeyPair
} from "@whiskeysockets/baileys"
import { randomBytes } from "node:crypto"

const SALT_LENGTH = 32
const CTR_IV_LENGTH = 16
const GCM_IV_LENGTH = 12
const KEY_LENGTH = 32

/** What the phone shows and the user types: Crockford base32, with or without the dash the phone prints. */
export const normalizePairingCode = (code: string) => code.replace(/[\s-]/g, "").toUpperCase()

/** `salt ‖ iv ‖ AES-CTR(key)`, the key derived from the 8-character code (PBKDF2, 2^17 rounds). */
export const unwrapWithCode = async (code: string, wrapped: Uint8Array): Promise<Buffer> => {
  const bytes = Buffer.from(wrapped)
  if (bytes.length < SALT_LENGTH + CTR_IV_LENGTH + KEY_LENGTH) throw new Error("wrapped key too short")
  const secret = await derivePairingCodeKey(code, bytes.subarray(0, SALT_LENGTH))
  const iv = bytes.subarray(SALT_LENGTH, SALT_LENGTH + CTR_IV_LENGTH)
  return aesDecryptCTR(
    bytes.subarray(SALT_LENGTH + CTR_IV_LENGTH, SALT_LENGTH + CTR_IV_LENGTH + KEY_LENGTH),
    secret,
    iv
  )
}

export const wrapWithCode = async (code: string, publicKey: Uint8Array): Promise<Buffer> => {
  const salt = randomBytes(SALT_LENGTH)
  const iv = randomBytes(CTR_IV_LENGTH)
  const secret = await derivePairingCodeKey(code, salt)
  return Buffer.concat([salt, iv, aesEncryptCTR(publicKey, secret, iv)])
}

/** What the companion proves in `companion_finish`, once the phone has opened it. */
export interface CompanionKeyBundle {
  readonly identityKey: Buffer
  /** The adv secret both sides now share, as the QR would have carried it. */
  readonly advSecret: Buffer
}

/**
 * The phone's side of `companion_finish`: the bundle is sealed with a key only a phone that typed
 * the right code can derive (its ephemeral key was wrapped with that code); it must name the
 * account's identity key. The adv secret mixes both key agreements and the companion's random.
 */
export const openKeyBundle = (
  wrappedBundle: Uint8Array,
  keys: {
    readonly primaryEphemeral: KeyPair
    readonly companionEphemeralPublic: Uint8Array
    readonly accountKey: KeyPair
  }
): CompanionKeyBundle => {
  const bytes = Buffer.from(wrappedBundle)
  const salt = bytes.subarray(0, SALT_LENGTH)
  const iv = bytes.subarray(SALT_LENGTH, SALT_LENGTH + GCM_IV_LENGTH)
  const sealed = bytes.subarray(SALT_LENGTH + GCM_IV_LENGTH)
  const companionShared = Curve.sharedKey(keys.primaryEphemeral.private, keys.companionEphemeralPublic)
  const bundleKey = hkdf(companionShared, 32, { salt, info: "link_code_pairing_key_bundle_encryption_key" })
  const bundle = aesDecryptGCM(sealed, Buffer.from(bundleKey), iv, Buffer.alloc(0))
  const identityKey = bundle.subarray(0, KEY_LENGTH)
  const primaryIdentity = bundle.subarray(KEY_LENGTH, 2 * KEY_LENGTH)
  const random = bundle.subarray(2 * KEY_LENGTH, 3 * KEY_LENGTH)
  if (!primaryIdentity.equals(Buffer.from(keys.accountKey.public))) {
    throw new Error("the key bundle names another phone's identity")
  }
  const identityShared = Curve.sharedKey(keys.accountKey.private, identityKey)
  const advSecret = hkdf(Buffer.concat([companionShared, identityShared, random]), 32, { info: "adv_secret" })
  return { identityKey: Buffer.from(identityKey), advSecret: Buffer.from(advSecret) }
}
