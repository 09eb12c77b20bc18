import { Curve, hmacSign, proto, WA_ADV_ACCOUNT_SIG_PREFIX, type BinaryNode } from "@whiskeysockets/baileys"
import { randomInt } from "node:crypto"
import { lidJid, pnJid, type Account } from "./accounts.ts"

/** What a phone reads from a companion's QR code. */
export interface ScannedQr {
  readonly ref: string
  readonly noiseKey: Buffer
  readonly identityKey: Buffer
  readonly advSecret: Buffer
  readonly platformId: string | undefined
}

/** rc14 shows `https://wa.me/settings/linked_devices#ref,noiseKey,identityKey,advSecret,platformId`. */
export const readQr = (qr: string): ScannedQr => {
  const data = qr.includes("#") ? qr.slice(qr.indexOf("#") + 1) : qr
  const [ref, noiseKey, identityKey, advSecret, platformId] = data.split(",")
  if (!ref || !noiseKey || !identityKey || !advSecret) throw new Error(`not a WhatsApp pairing QR: ${qr}`)
  return {
    ref,
    noiseKey: Buffer.from(noiseKey, "base64"),
    identityKey: Buffer.from(identityKey, "base64"),
    advSecret: Buffer.from(advSecret, "base64"),
    platformId
  }
}

/** What the phone needs from a companion to vouch for it, from a QR or from a pairing-code exchange. */
export interface CompanionKeys {
  readonly identityKey: Uint8Array
  readonly advSecret: Uint8Array
}

/**
 * What the phone vouches for when it links a device: the account key signs the device's identity
 * key, and the whole is HMAC'd with the secret only the QR carried.
 */
export const signDeviceIdentity = (
  account: Account,
  deviceId: number,
  companion: CompanionKeys
): Uint8Array => {
  const details = proto.ADVDeviceIdentity.encode({
    rawId: randomInt(1, 2 ** 31),
    timestamp: Math.floor(Date.now() / 1000),
    keyIndex: deviceId,
    accountType: proto.ADVEncryptionType.E2EE,
    deviceType: proto.ADVEncryptionType.E2EE
  }).finish()
  const accountSignature = Curve.sign(
    account.accountKey.private,
    Buffer.concat([WA_ADV_ACCOUNT_SIG_PREFIX, details, companion.identityKey])
  )
  const signed = proto.ADVSignedDeviceIdentity.encode({
    details,
    accountSignatureKey: account.accountKey.public,
    accountSignature
  }).finish()
  return proto.ADVSignedDeviceIdentityHMAC.encode({
    details: signed,
    hmac: hmacSign(signed, Buffer.from(companion.advSecret)),
    accountType: proto.ADVEncryptionType.E2EE
  }).finish()
}

export const pairSuccessNode = (
  account: Account,
  deviceId: number,
  companion: CompanionKeys,
  platform: string
): BinaryNode => ({
  tag: "iq",
  attrs: { from: "s.whatsapp.net", type: "set", t: String(Math.floor(Date.now() / 1000)) },
  content: [
    {
      tag: "pair-success",
      attrs: {},
      content: [
        { tag: "device-identity", attrs: {}, content: signDeviceIdentity(account, deviceId, companion) },
        { tag: "platform", attrs: { name: platform } },
        {
          tag: "device",
          attrs: { jid: pnJid(account.phoneNumber, deviceId), lid: lidJid(account.lidUser, deviceId) }
        }
      ]
    }
  ]
})
