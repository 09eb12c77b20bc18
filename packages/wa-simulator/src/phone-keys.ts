import {
  Curve,
  encodeWAMessage,
  KEY_BUNDLE_TYPE,
  proto,
  signedKeyPair,
  unpadRandomMax16,
  type KeyPair
} from "@whiskeysockets/baileys"
import { randomInt } from "node:crypto"
import { ProtocolAddress, SessionBuilder, SessionCipher, SessionRecord, type SignalStorage } from "libsignal"

const ONE_TIME_PRE_KEYS = 50

/** The Signal identity of an account's primary device (the phone, device 0), private keys included. */
export interface PhoneKeys {
  readonly registrationId: number
  readonly identity: KeyPair
  readonly signedPreKey: { readonly id: number; readonly keyPair: KeyPair; readonly signature: Uint8Array }
  /** One-time pre-keys, private halves kept until a pkmsg consumes them. */
  readonly preKeys: Map<number, KeyPair>
  /** Ids not yet handed out in a bundle. */
  readonly unissued: number[]
  readonly sessions: Map<string, Uint8Array>
}

export const makePhoneKeys = (): PhoneKeys => {
  const identity = Curve.generateKeyPair()
  const signed = signedKeyPair(identity, 1)
  const preKeys = new Map<number, KeyPair>()
  for (let id = 1; id <= ONE_TIME_PRE_KEYS; id++) preKeys.set(id, Curve.generateKeyPair())
  return {
    registrationId: randomInt(1, 16_380),
    identity,
    signedPreKey: { id: signed.keyId, keyPair: signed.keyPair, signature: signed.signature },
    preKeys,
    unissued: [...preKeys.keys()],
    sessions: new Map()
  }
}

/** A pre-key bundle's parts as `<iq xmlns=encrypt>` carries them (32-byte keys, no type byte). */
export interface Bundle {
  readonly registrationId: number
  readonly identityKey: Uint8Array
  readonly signedPreKey: {
    readonly id: number
    readonly publicKey: Uint8Array
    readonly signature: Uint8Array
  }
  readonly preKey: { readonly id: number; readonly publicKey: Uint8Array } | undefined
}

/** Hands out the phone's bundle; each one-time pre-key goes out once, then bundles carry none. */
export const issueBundle = (keys: PhoneKeys): Bundle => {
  const preKeyId = keys.unissued.shift()
  const preKey = preKeyId === undefined ? undefined : keys.preKeys.get(preKeyId)
  return {
    registrationId: keys.registrationId,
    identityKey: keys.identity.public,
    signedPreKey: {
      id: keys.signedPreKey.id,
      publicKey: keys.signedPreKey.keyPair.public,
      signature: keys.signedPreKey.signature
    },
    preKey: preKeyId !== undefined && preKey ? { id: preKeyId, publicKey: preKey.public } : undefined
  }
}

const withType = (publicKey: Uint8Array) => Buffer.concat([KEY_BUNDLE_TYPE, publicKey])

const signalPair = (pair: KeyPair) => ({ pubKey: withType(pair.public), privKey: Buffer.from(pair.private) })

/** libsignal's view of the phone: its own keys, and the sessions companions opened with it. */
const storageOf = (keys: PhoneKeys): SignalStorage => ({
  loadSession: (id) => {
    const stored = keys.sessions.get(id)
    return Promise.resolve(stored ? SessionRecord.deserialize(stored) : undefined)
  },
  storeSession: (id, session) => {
    keys.sessions.set(id, session.serialize())
    return Promise.resolve()
  },
  // The simulated phone trusts every identity, as a phone does on first contact.
  isTrustedIdentity: () => true,
  loadPreKey: (id) => {
    const pair = keys.preKeys.get(Number(id))
    return Promise.resolve(pair ? signalPair(pair) : undefined)
  },
  removePreKey: (id) => {
    keys.preKeys.delete(id)
  },
  loadSignedPreKey: () => signalPair(keys.signedPreKey.keyPair),
  getOurRegistrationId: () => keys.registrationId,
  getOurIdentity: () => signalPair(keys.identity)
})

/**
 * The phone decrypts what a companion device encrypted to it (`pkmsg` opens the session, `msg`
 * continues it); `sender` names the companion's device, e.g. `15551234567.1`.
 */
export const decryptForPhone = async (
  keys: PhoneKeys,
  sender: { readonly user: string; readonly device: number },
  type: string,
  ciphertext: Uint8Array
): Promise<proto.Message> => {
  const cipher = new SessionCipher(storageOf(keys), new ProtocolAddress(sender.user, sender.device))
  const body = Buffer.from(ciphertext)
  const padded =
    type === "pkmsg"
      ? await cipher.decryptPreKeyWhisperMessage(body)
      : type === "msg"
        ? await cipher.decryptWhisperMessage(body)
        : undefined
  if (!padded) throw new Error(`cannot decrypt an enc of type ${type}`)
  return proto.Message.decode(unpadRandomMax16(padded))
}

/** A device of another account, as libsignal names it: `15551234567.1`. */
export interface DeviceAddress {
  readonly user: string
  readonly device: number
}

type OutgoingSession = Parameters<SessionBuilder["initOutgoing"]>[0]

/**
 * A bundle as libsignal opens a session with it (33-byte typed keys), e.g. Baileys'
 * `extractE2ESessionFromRetryReceipt`; the one-time pre-key may be absent (libsignal's runtime allows it).
 */
export type SignalBundle = Omit<OutgoingSession, "preKey"> & {
  readonly preKey?: OutgoingSession["preKey"] | undefined
}

export const signalBundle = (bundle: Bundle): SignalBundle => ({
  registrationId: bundle.registrationId,
  identityKey: withType(bundle.identityKey),
  signedPreKey: {
    keyId: bundle.signedPreKey.id,
    publicKey: withType(bundle.signedPreKey.publicKey),
    signature: Buffer.from(bundle.signedPreKey.signature)
  },
  ...(bundle.preKey
    ? { preKey: { keyId: bundle.preKey.id, publicKey: withType(bundle.preKey.publicKey) } }
    : {})
})

/** Whether the phone shares an open Signal session with that device. */
export const hasSession = (keys: PhoneKeys, device: DeviceAddress): boolean => {
  const stored = keys.sessions.get(new ProtocolAddress(device.user, device.device).toString())
  return stored !== undefined && SessionRecord.deserialize(stored).haveOpenSession()
}

/**
 * The phone encrypts a message to a linked device, as Baileys encrypts (padded protobuf): in the
 * session they share, or in a new one opened from `bundle` (which replaces the open session, as a
 * retry receipt's keys do). Signal's rule gives the type: `pkmsg` while the device has not yet
 * answered in a session the phone opened, `msg` after, and at once in a session the device opened.
 */
export const encryptForDevice = async (
  keys: PhoneKeys,
  device: DeviceAddress,
  message: proto.IMessage,
  bundle?: SignalBundle
): Promise<{ readonly type: "pkmsg" | "msg"; readonly ciphertext: Buffer }> => {
  const address = new ProtocolAddress(device.user, device.device)
  if (bundle) await new SessionBuilder(storageOf(keys), address).initOutgoing(bundle as OutgoingSession)
  const { type, body } = await new SessionCipher(storageOf(keys), address).encrypt(encodeWAMessage(message))
  return { type: type === 3 ? "pkmsg" : "msg", ciphertext: Buffer.from(body, "binary") }
}
