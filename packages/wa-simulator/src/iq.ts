import {
  getBinaryNodeChild,
  getBinaryNodeChildBuffer,
  getBinaryNodeChildren,
  type BinaryNode
} from "@whiskeysockets/baileys"
import type { Device } from "./accounts.ts"

export const SERVER_JID = "s.whatsapp.net"

export const iqResult = (request: BinaryNode, content?: BinaryNode[]): BinaryNode => ({
  tag: "iq",
  attrs: { from: SERVER_JID, type: "result", id: request.attrs.id ?? "" },
  ...(content ? { content } : {})
})

export const iqError = (request: BinaryNode, code: number, text: string): BinaryNode => ({
  tag: "iq",
  attrs: { from: SERVER_JID, type: "error", id: request.attrs.id ?? "" },
  content: [{ tag: "error", attrs: { code: String(code), text } }]
})

const readUInt = (bytes: Uint8Array | undefined): number =>
  bytes ? bytes.reduce((value, byte) => value * 256 + byte, 0) : 0

/**
 * What Baileys asks right after `<success>` (pre-key count and upload, passive, digest, props,
 * blocklist, privacy) and its keep-alive pings, by iq namespace; undefined when not handled.
 */
export const answerIq = (device: Device | undefined, node: BinaryNode): BinaryNode | undefined => {
  const first = Array.isArray(node.content) ? node.content[0] : undefined
  const type = node.attrs.type
  switch (node.attrs.xmlns) {
    case "w:p":
    case "passive":
    case "w:stats":
      return iqResult(node)
    case "encrypt":
      return device ? answerEncrypt(device, node, first) : undefined
    case "abt":
      return iqResult(node, [{ tag: "props", attrs: { protocol: "1", hash: "simulator" }, content: [] }])
    case "blocklist":
      return type === "get" ? iqResult(node, [{ tag: "list", attrs: {}, content: [] }]) : iqResult(node)
    case "privacy":
      return type === "get"
        ? iqResult(node, [
            {
              tag: "privacy",
              attrs: {},
              content: ["last", "online", "profile", "status", "readreceipts", "groupadd"].map((name) => ({
                tag: "category",
                attrs: { name, value: "all" }
              }))
            }
          ])
        : iqResult(node)
    default:
      return undefined
  }
}

const answerEncrypt = (
  device: Device,
  node: BinaryNode,
  first: BinaryNode | undefined
): BinaryNode | undefined => {
  if (node.attrs.type === "get" && first?.tag === "count") {
    return iqResult(node, [{ tag: "count", attrs: { value: String(device.preKeys.size) } }])
  }
  if (node.attrs.type === "get" && first?.tag === "digest") {
    return iqResult(node, [{ tag: "digest", attrs: {} }])
  }
  if (node.attrs.type === "set" && first?.tag === "rotate") {
    const skey = getBinaryNodeChild(first, "skey")
    storeSignedPreKey(device, skey)
    return iqResult(node)
  }
  if (node.attrs.type === "set" && getBinaryNodeChild(node, "list")) {
    for (const key of getBinaryNodeChildren(getBinaryNodeChild(node, "list"), "key")) {
      const value = getBinaryNodeChildBuffer(key, "value")
      if (value) device.preKeys.set(readUInt(getBinaryNodeChildBuffer(key, "id")), value)
    }
    storeSignedPreKey(device, getBinaryNodeChild(node, "skey"))
    return iqResult(node)
  }
  return undefined
}

const storeSignedPreKey = (device: Device, skey: BinaryNode | undefined) => {
  const publicKey = getBinaryNodeChildBuffer(skey, "value")
  const signature = getBinaryNodeChildBuffer(skey, "signature")
  if (publicKey && signature) {
    device.signedPreKey = { id: readUInt(getBinaryNodeChildBuffer(skey, "id")), publicKey, signature }
  }
}
