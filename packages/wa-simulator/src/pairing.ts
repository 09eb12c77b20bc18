import {
  Curve,
  getBinaryNodeChild,
  getBinaryNodeChildBuffer,
  jidDecode,
  type BinaryNode,
  type proto
} from "@whiskeysockets/baileys"
import { randomBytes } from "node:crypto"
import { lidJid, pnJid, type Account, type Accounts } from "./accounts.ts"
import type { Connection } from "./connection.ts"
import { iqError, iqResult, SERVER_JID } from "./iq.ts"
import { normalizePairingCode, openKeyBundle, unwrapWithCode, wrapWithCode } from "./link-code.ts"
import { pairSuccessNode, readQr, type CompanionKeys } from "./phone.ts"

export interface ScanOptions {
  /** Digits only, with the country code: `15551234567`. */
  readonly phoneNumber: string
  readonly pushName?: string
  /** The `<platform name>` the phone reports in `pair-success`. */
  readonly platform?: string
}

export type PairingCodeOptions = Omit<ScanOptions, "phoneNumber">

export interface LinkedDevice {
  readonly jid: string
  readonly lid: string
  readonly deviceId: number
}

/** A companion that asked for a pairing code (`companion_hello`) for a phone number. */
interface CodeRequest {
  readonly phoneNumber: string
  readonly ref: string
  readonly wrappedEphemeral: Uint8Array
  /** Set while a phone waits for the companion's `companion_finish`. */
  finish?: { readonly resolve: (node: BinaryNode) => void; readonly reject: (error: Error) => void }
}

interface Companion {
  readonly connection: Connection
  readonly registration: proto.ClientPayload.IDevicePairingRegistrationData
  readonly refs: ReadonlyArray<string>
  codeRequest?: CodeRequest
}

const readUInt = (bytes: Uint8Array | null | undefined): number =>
  bytes ? bytes.reduce((value, byte) => value * 256 + byte, 0) : 0

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64")

const LINK_CODE_NODE = "link_code_companion_reg"

/** How long a phone waits for a companion that may still be sending its `companion_hello`. */
const CODE_REQUEST_GRACE_MS = 10_000

/** The phone's answer to a code, as a notification: its ephemeral key wrapped with the code, and its identity. */
const primaryHello = (ref: string, wrappedEphemeral: Uint8Array, account: Account): BinaryNode => ({
  tag: "notification",
  attrs: {
    from: SERVER_JID,
    type: LINK_CODE_NODE,
    id: randomBytes(8).toString("hex").toUpperCase(),
    t: String(Math.floor(Date.now() / 1000))
  },
  content: [
    {
      tag: LINK_CODE_NODE,
      attrs: { stage: "primary_hello" },
      content: [
        { tag: "link_code_pairing_ref", attrs: {}, content: Buffer.from(ref) },
        { tag: "link_code_pairing_wrapped_primary_ephemeral_pub", attrs: {}, content: wrappedEphemeral },
        { tag: "primary_identity_pub", attrs: {}, content: Buffer.from(account.accountKey.public) }
      ]
    }
  ]
})

/** New companions waiting for a phone to scan their QR or to type their pairing code, and that phone. */
export const makePairing = (accounts: Accounts, options: { readonly qrRefs: number }) => {
  const companions = new Map<string, Companion>()
  /** Phones waiting for a companion's `companion_hello`, re-checked whenever companions change. */
  const watchers = new Set<() => void>()
  const companionsChanged = () => {
    for (const watch of [...watchers]) watch()
  }

  const companionOf = (connection: Connection) => {
    const noiseKey = connection.noiseKey()
    const companion = noiseKey ? companions.get(b64(noiseKey)) : undefined
    return companion?.connection === connection ? companion : undefined
  }

  /** A registration login: hand out the refs Baileys turns into QR codes. */
  const offerQr = (
    connection: Connection,
    registration: proto.ClientPayload.IDevicePairingRegistrationData
  ) => {
    const noiseKey = connection.noiseKey()
    if (!noiseKey) return
    const refs = Array.from({ length: options.qrRefs }, () => randomBytes(16).toString("base64url"))
    companions.set(b64(noiseKey), { connection, registration, refs })
    companionsChanged()
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
    const companion = companionOf(connection)
    if (!companion) return
    companion.codeRequest?.finish?.reject(new Error("the companion disconnected during the pairing"))
    companions.delete(b64(connection.noiseKey()!))
    companionsChanged()
  }

  /**
   * The phone vouches for the companion in `pair-success`, waits for its `pair-device-sign`,
   * records the device and tells the companion to restart (515).
   */
  const link = async (
    companion: Companion,
    account: Account,
    keys: CompanionKeys,
    platform: string
  ): Promise<LinkedDevice> => {
    const { connection, registration } = companion
    const noiseKey = connection.noiseKey()!
    const deviceId = account.nextDeviceId++
    const answer = await connection.query(pairSuccessNode(account, deviceId, keys, platform))
    const signed = getBinaryNodeChild(getBinaryNodeChild(answer, "pair-device-sign"), "device-identity")
    if (answer.attrs.type !== "result" || !signed) {
      throw new Error("the companion refused the pairing")
    }
    companions.delete(b64(noiseKey))
    account.devices.set(deviceId, {
      id: deviceId,
      noiseKey,
      identityKey: keys.identityKey,
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

  /** What the phone does with a scanned QR. */
  const scan = async (qrText: string, scanOptions: ScanOptions): Promise<LinkedDevice> => {
    const qr = readQr(qrText)
    const companion = companions.get(b64(qr.noiseKey))
    if (!companion || !companion.refs.includes(qr.ref) || !companion.connection.isOpen()) {
      throw new Error("no connected companion is showing this QR")
    }
    if (
      !companion.registration.eIdent ||
      !Buffer.from(companion.registration.eIdent).equals(qr.identityKey)
    ) {
      throw new Error("the QR's identity key is not the one the companion registered")
    }
    const account = accounts.getOrCreate(
      scanOptions.phoneNumber,
      scanOptions.pushName ?? scanOptions.phoneNumber
    )
    return link(companion, account, qr, scanOptions.platform ?? "android")
  }

  /**
   * A companion's `link_code_companion_reg` iqs: `companion_hello` asks for a code for a number
   * (answered with the pairing ref), `companion_finish` carries its key bundle to the waiting phone.
   * Returns false for any other stanza.
   */
  const onLinkCodeIq = (connection: Connection, node: BinaryNode): boolean => {
    const request = getBinaryNodeChild(node, LINK_CODE_NODE)
    if (node.tag !== "iq" || node.attrs.xmlns !== "md" || node.attrs.type !== "set" || !request) return false
    const companion = companionOf(connection)
    if (!companion) {
      connection.send(iqError(node, 400, "bad-request"))
      return true
    }
    if (request.attrs.stage === "companion_hello") {
      const phoneNumber = jidDecode(request.attrs.jid)?.user
      const wrappedEphemeral = getBinaryNodeChildBuffer(
        request,
        "link_code_pairing_wrapped_companion_ephemeral_pub"
      )
      if (!phoneNumber || !wrappedEphemeral) {
        connection.send(iqError(node, 400, "bad-request"))
        return true
      }
      const ref = randomBytes(16).toString("base64url")
      companion.codeRequest?.finish?.reject(new Error("the companion asked for a new code"))
      companion.codeRequest = { phoneNumber, ref, wrappedEphemeral }
      companionsChanged()
      connection.send(
        iqResult(node, [
          {
            tag: LINK_CODE_NODE,
            attrs: {},
            content: [{ tag: "link_code_pairing_ref", attrs: {}, content: Buffer.from(ref) }]
          }
        ])
      )
      return true
    }
    const finish = companion.codeRequest?.finish
    const ref = getBinaryNodeChildBuffer(request, "link_code_pairing_ref")
    if (
      request.attrs.stage !== "companion_finish" ||
      !finish ||
      !ref ||
      Buffer.from(ref).toString() !== companion.codeRequest?.ref
    ) {
      connection.send(iqError(node, 400, "bad-request"))
      return true
    }
    finish.resolve(node)
    return true
  }

  /**
   * The latest companion that asked for a code for the number. Baileys shows the code before the
   * server has its request, so while some companion has not asked yet, the phone waits a little.
   */
  const companionAskingFor = (phoneNumber: string) =>
    new Promise<Companion>((resolve, reject) => {
      const settle = (outcome: () => void) => {
        watchers.delete(check)
        clearTimeout(timer)
        outcome()
      }
      const noCompanion = () => new Error(`no connected companion is waiting for a code for ${phoneNumber}`)
      const check = () => {
        const open = [...companions.values()].filter((each) => each.connection.isOpen())
        const asking = open.reverse().find((each) => each.codeRequest?.phoneNumber === phoneNumber)
        if (asking) settle(() => resolve(asking))
        else if (!open.some((each) => !each.codeRequest)) settle(() => reject(noCompanion()))
      }
      const timer = setTimeout(() => settle(() => reject(noCompanion())), CODE_REQUEST_GRACE_MS)
      watchers.add(check)
      check()
    })

  /**
   * What the phone does when the user types a companion's 8-character code: unwrap the companion's
   * ephemeral key with it, send its own (wrapped with the same code) and its identity key, open the
   * companion's key bundle, then link the device as for a QR. A wrong code fails on the bundle.
   */
  const enterPairingCode = async (
    phoneNumber: string,
    typedCode: string,
    codeOptions: PairingCodeOptions = {}
  ): Promise<LinkedDevice> => {
    const code = normalizePairingCode(typedCode)
    const companion = await companionAskingFor(phoneNumber)
    const request = companion.codeRequest!
    if (request.finish) throw new Error("a phone is already linking this companion")
    // Claimed before any await: a second phone, or a new companion_hello, sees it at once.
    const finished = new Promise<BinaryNode>((resolve, reject) => {
      request.finish = { resolve, reject }
    })
    // The companion may go away while the code is still being derived; that is awaited below.
    finished.catch(() => {})
    const account = accounts.getOrCreate(phoneNumber, codeOptions.pushName ?? phoneNumber)
    const primaryEphemeral = Curve.generateKeyPair()
    let companionEphemeralPublic: Buffer
    let finish: BinaryNode
    try {
      companionEphemeralPublic = await unwrapWithCode(code, request.wrappedEphemeral)
      companion.connection.send(
        primaryHello(request.ref, await wrapWithCode(code, primaryEphemeral.public), account)
      )
      finish = await finished
    } finally {
      delete request.finish
    }
    const bundle = getBinaryNodeChildBuffer(
      getBinaryNodeChild(finish, LINK_CODE_NODE),
      "link_code_pairing_wrapped_key_bundle"
    )
    let keys: CompanionKeys
    try {
      if (!bundle) throw new Error("companion_finish without a key bundle")
      keys = openKeyBundle(bundle, {
        primaryEphemeral,
        companionEphemeralPublic,
        accountKey: account.accountKey
      })
    } catch {
      companion.connection.send(iqError(finish, 401, "not-authorized"))
      throw new Error("the pairing code does not match the companion's")
    }
    companion.connection.send(iqResult(finish))
    if (
      !companion.registration.eIdent ||
      !Buffer.from(companion.registration.eIdent).equals(keys.identityKey)
    ) {
      throw new Error("the key bundle's identity key is not the one the companion registered")
    }
    return link(companion, account, keys, codeOptions.platform ?? "android")
  }

  return { offerQr, forget, scan, onLinkCodeIq, enterPairingCode }
}
