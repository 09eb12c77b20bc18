import { getBinaryNodeChild, type proto } from "@whiskeysockets/baileys"
import { randomBytes } from "node:crypto"
import { lidJid, pnJid, type Accounts } from "./accounts.ts"
import type { Connection } from "./connection.ts"
import { SERVER_JID } from "./iq.ts"
import { pairSuccessNode, readQr } from "./phone.ts"

export interface ScanOptions {
  /** Digits only, with the country code: `15551234567`. */
  readonly phoneNumber: string
  readonly pushName?: string
  /** The `<platform name>` the phone reports in `pair-success`. */
  readonly platform?: string
}

export interface LinkedDevice {
  readonly jid: string
  readonly lid: string
  readonly deviceId: number
}

interface Companion {
  readonly connection: Connection
  readonly registration: proto.ClientPayload.IDevicePairingRegistrationData
  readonly refs: ReadonlyArray<string>
}

const readUInt = (bytes: Uint8Array | null | undefined): number =>
  bytes ? bytes.reduce((value, byte) => value * 256 + byte, 0) : 0

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64")

/** New companions waiting for a phone to scan their QR, and the phone that scans it. */
export const makePairing = (accounts: Accounts, options: { readonly qrRefs: number }) => {
  const companions = new Map<string, Companion>()

  /** A registration login: hand out the refs Baileys turns into QR codes. */
  const offerQr = (
    connection: Connection,
    registration: proto.ClientPayload.IDevicePairingRegistrationData
  ) => {
    const noiseKey = connection.noiseKey()
    if (!noiseKey) return
    const refs = Array.from({ length: options.qrRefs }, () => randomBytes(16).toString("base64url"))
    companions.set(b64(noiseKey), { connection, registration, refs })
    connection
      .query({
        tag: "iq",
        attrs: { from: SERVER_JID, type: "set", xmlns: "md" },
        content: [
          {
            tag: "pair-device",
            attrs: {},
            content: refs.map((ref) => ({ tag: "ref", attrs: {}, content: Buffer.from(ref) }))
          }
        ]
      })
      .catch(() => {})
  }

  const forget = (connection: Connection) => {
    const noiseKey = connection.noiseKey()
    if (noiseKey && companions.get(b64(noiseKey))?.connection === connection) companions.delete(b64(noiseKey))
  }

  /**
   * What the phone does with a scanned QR: vouch for the companion in `pair-success`, wait for its
   * `pair-device-sign`, record the device and tell the companion to restart (515).
   */
  const scan = async (qrText: string, scanOptions: ScanOptions): Promise<LinkedDevice> => {
    const qr = readQr(qrText)
    const companion = companions.get(b64(qr.noiseKey))
    if (!companion || !companion.refs.includes(qr.ref) || !companion.connection.isOpen()) {
      throw new Error("no connected companion is showing this QR")
    }
    const { registration, connection } = companion
    if (!registration.eIdent || !Buffer.from(registration.eIdent).equals(qr.identityKey)) {
      throw new Error("the QR's identity key is not the one the companion registered")
    }
    const platform = scanOptions.platform ?? "android"
    const account = accounts.getOrCreate(
      scanOptions.phoneNumber,
      scanOptions.pushName ?? scanOptions.phoneNumber
    )
    const deviceId = account.nextDeviceId++
    const answer = await connection.query(pairSuccessNode(account, deviceId, qr, platform))
    const signed = getBinaryNodeChild(getBinaryNodeChild(answer, "pair-device-sign"), "device-identity")
    if (answer.attrs.type !== "result" || !signed) {
      throw new Error("the companion refused the pairing")
    }
    companions.delete(b64(qr.noiseKey))
    account.devices.set(deviceId, {
      id: deviceId,
      noiseKey: qr.noiseKey,
      identityKey: qr.identityKey,
      registrationId: readUInt(registration.eRegid),
      signedPreKey: {
        id: readUInt(registration.eSkeyId),
        publicKey: registration.eSkeyVal ?? new Uint8Array(),
        signature: registration.eSkeySig ?? new Uint8Array()
      },
      preKeys: new Map(),
      platform
    })
    connection.streamError(515)
    return { jid: pnJid(account.phoneNumber, deviceId), lid: lidJid(account.lidUser, deviceId), deviceId }
  }

  return { offerQr, forget, scan }
}
