import { describe, expect, it } from "@effect/vitest"
import * as curveJs from "curve25519-js"
import fc from "fast-check"
import * as curve from "libsignal/src/curve.js"

/**
 * libsignal's signature check (patched: Node's Ed25519 instead of curve25519-js's pure JavaScript)
 * against curve25519-js's own, the reference it replaces: every login checks WhatsApp's certificates
 * with it, and every new Signal session a contact's signed pre-key.
 */

/** ℓ, the order of the curve's base point: adding it to a signature's scalar gives the same point. */
const ORDER = 2n ** 252n + 27742317777372353535851937790883648493n

const keyPair = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((seed) => {
  const pair = curveJs.generateKeyPair(seed)
  return { private: Buffer.from(pair.private), public: Buffer.from(pair.public) }
})
const message = fc.uint8Array({ minLength: 0, maxLength: 300 }).map((bytes) => Buffer.from(bytes))

/** libsignal signs with curve25519-js (XEdDSA); its keys go in with their type byte (5). */
const signed = fc.tuple(keyPair, message).map(([pair, text]) => ({
  publicKey: Buffer.concat([Buffer.from([5]), pair.public]),
  rawKey: pair.public,
  text,
  signature: Buffer.from(curve.calculateSignature(pair.private, text))
}))

const flipped = (bytes: Buffer, bit: number) => {
  const copy = Buffer.from(bytes)
  copy[Math.floor(bit / 8) % copy.length]! ^= 1 << (bit % 8)
  return copy
}

const reference = (key: Uint8Array, text: Uint8Array, signature: Uint8Array) =>
  curveJs.verify(key, text, signature)

const runs = { numRuns: 60, seed: 20261202 }

describe("libsignal's XEdDSA signature check", () => {
  it("holds for every signature libsignal makes, as curve25519-js's does", () => {
    fc.assert(
      fc.property(signed, ({ publicKey, rawKey, text, signature }) => {
        expect(curve.verifySignature(publicKey, text, signature)).toBe(true)
        expect(curve.verifySignature(rawKey, text, signature)).toBe(true)
        expect(reference(rawKey, text, signature)).toBe(true)
      }),
      runs
    )
  })

  it("fails, as curve25519-js's does, for any one bit changed in the signature, the message or the key", () => {
    fc.assert(
      fc.property(
        signed,
        fc.nat({ max: 511 }),
        fc.constantFrom("signature", "message", "key"),
        ({ rawKey, text, signature }, bit, changed) => {
          // a change of the key's top bit is no change (it is masked, as X25519 masks it)
          fc.pre(!(changed === "key" && bit % 256 === 255))
          fc.pre(!(changed === "message" && text.length === 0))
          const key = changed === "key" ? flipped(rawKey, bit % 256) : rawKey
          const body = changed === "message" ? flipped(text, bit % (8 * text.length)) : text
          const sig = changed === "signature" ? flipped(signature, bit) : signature
          expect(reference(key, body, sig)).toBe(false)
          expect(curve.verifySignature(key, body, sig)).toBe(false)
          expect(curve.verifySignature(Buffer.concat([Buffer.from([5]), key]), body, sig)).toBe(false)
        }
      ),
      runs
    )
  })

  it("fails for a signature checked with any other key, as curve25519-js's does", () => {
    fc.assert(
      fc.property(
        signed,
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        ({ rawKey, text, signature }, other) => {
          fc.pre(!Buffer.from(other).equals(rawKey))
          const key = Buffer.from(other)
          expect(curve.verifySignature(key, text, signature)).toBe(reference(key, text, signature))
          expect(curve.verifySignature(key, text, signature)).toBe(false)
        }
      ),
      runs
    )
  })

  it("refuses a signature whose scalar is not reduced (s + ℓ), which curve25519-js let through", () => {
    fc.assert(
      fc.property(signed, ({ rawKey, text, signature }) => {
        // s is the second half, little-endian, below the sign bit XEdDSA keeps in the last byte
        const signBit = signature[63]! & 0x80
        let s = 0n
        for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(i === 63 ? signature[i]! & 0x7f : signature[i]!)
        let malleable = s + ORDER
        const changed = Buffer.from(signature)
        for (let i = 32; i < 64; i++) {
          changed[i] = Number(malleable & 0xffn)
          malleable >>= 8n
        }
        changed[63] = changed[63]! | signBit
        expect(reference(rawKey, text, changed)).toBe(true)
        expect(curve.verifySignature(rawKey, text, changed)).toBe(false)
      }),
      { ...runs, numRuns: 20 }
    )
  })
})
