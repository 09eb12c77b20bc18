import { Curve, type KeyPair } from "@whiskeysockets/baileys"
import { randomInt } from "node:crypto"
import { makePhoneKeys, type Bundle, type PhoneKeys } from "./phone-keys.ts"

export interface SignedPreKey {
  readonly id: number
  readonly publicKey: Uint8Array
  readonly signature: Uint8Array
}

/** A linked device (companion) as the server knows it. */
export interface Device {
  readonly id: number
  readonly noiseKey: Uint8Array
  readonly identityKey: Uint8Array
  readonly registrationId: number
  signedPreKey: SignedPreKey
  readonly preKeys: Map<number, Uint8Array>
  readonly platform: string
}

/** A phone number with its account key (the phone's identity) and its linked devices. */
export interface Account {
  readonly phoneNumber: string
  readonly lidUser: string
  readonly accountKey: KeyPair
  readonly pushName: string
  readonly devices: Map<number, Device>
  nextDeviceId: number
  /** The phone's own Signal keys (device 0): what companions encrypt to when they message this number. */
  readonly phoneKeys: PhoneKeys
}

/** A linked device's bundle as the server hands it out: each uploaded one-time pre-key goes out once. */
export const issueDeviceBundle = (device: Device): Bundle => {
  const preKeyId = device.preKeys.keys().next().value
  const preKey = preKeyId === undefined ? undefined : device.preKeys.get(preKeyId)
  if (preKeyId !== undefined) device.preKeys.delete(preKeyId)
  return {
    registrationId: device.registrationId,
    identityKey: device.identityKey,
    signedPreKey: device.signedPreKey,
    preKey: preKeyId !== undefined && preKey ? { id: preKeyId, publicKey: preKey } : undefined
  }
}

export const pnJid = (phoneNumber: string, device?: number) =>
  device ? `${phoneNumber}:${device}@s.whatsapp.net` : `${phoneNumber}@s.whatsapp.net`

export const lidJid = (lidUser: string, device?: number) =>
  device ? `${lidUser}:${device}@lid` : `${lidUser}@lid`

export const makeAccounts = () => {
  const byNumber = new Map<string, Account>()
  const byLid = new Map<string, Account>()
  return {
    get: (phoneNumber: string) => byNumber.get(phoneNumber),
    byLid: (lidUser: string) => byLid.get(lidUser),
    getOrCreate: (phoneNumber: string, pushName: string): Account => {
      const existing = byNumber.get(phoneNumber)
      if (existing) return existing
      const account: Account = {
        phoneNumber,
        lidUser: String(randomInt(10_000_000, 99_999_999)) + String(randomInt(1_000_000, 9_999_999)),
        accountKey: Curve.generateKeyPair(),
        pushName,
        devices: new Map(),
        nextDeviceId: 1,
        phoneKeys: makePhoneKeys()
      }
      byNumber.set(phoneNumber, account)
      byLid.set(account.lidUser, account)
      return account
    },
    findDevice: (phoneNumber: string, deviceId: number) => byNumber.get(phoneNumber)?.devices.get(deviceId)
  }
}

export type Accounts = ReturnType<typeof makeAccounts>
