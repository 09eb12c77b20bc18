import {
  aesDecryptGCM,
  aesEncryptGCM,
  Curve,
  hkdf,
  NOISE_MODE,
  proto,
  type KeyPair
} from "@whiskeysockets/baileys"
import { createHash } from "node:crypto"

const sha256 = (data: Uint8Array): Buffer => createHash("sha256").update(data).digest()

const ivFor = (counter: number): Buffer => {
  const iv = Buffer.alloc(12)
  iv.writeUInt32BE(counter, 8)
  return iv
}

/** AES-GCM keys with their frame counters once the handshake is over. */
export interface Transport {
  readonly encrypt: (plaintext: Uint8Array) => Buffer
  readonly decrypt: (ciphertext: Uint8Array) => Buffer
}

const makeTransport = (encKey: Uint8Array, decKey: Uint8Array): Transport => {
  let writeCounter = 0
  let readCounter = 0
  return {
    encrypt: (plaintext) => aesEncryptGCM(plaintext, encKey, ivFor(writeCounter++), Buffer.alloc(0)),
    decrypt: (ciphertext) => aesDecryptGCM(ciphertext, decKey, ivFor(readCounter++), Buffer.alloc(0))
  }
}

/**
 * The responder side of Noise_XX_25519_AESGCM_SHA256 as WhatsApp Web speaks it: the mirror image of
 * Baileys' noise-handler, with the same running hash, salt and counters.
 */
export const makeResponderNoise = (prologue: Uint8Array, staticKeyPair: KeyPair) => {
  const mode = Buffer.from(NOISE_MODE)
  let hash = mode.byteLength === 32 ? mode : sha256(mode)
  let salt: Uint8Array = hash
  let key: Uint8Array = hash
  let counter = 0
  const ephemeral = Curve.generateKeyPair()
  let clientEphemeral: Uint8Array | undefined

  const authenticate = (data: Uint8Array) => {
    hash = sha256(Buffer.concat([hash, data]))
  }
  const split = (data: Uint8Array): [Buffer, Buffer] => {
    const out = Buffer.from(hkdf(Buffer.from(data), 64, { salt: Buffer.from(salt), info: "" }))
    return [out.subarray(0, 32), out.subarray(32)]
  }
  const mixIntoKey = (data: Uint8Array) => {
    const [write, read] = split(data)
    salt = write
    key = read
    counter = 0
  }
  const encrypt = (plaintext: Uint8Array) => {
    const result = aesEncryptGCM(plaintext, key, ivFor(counter++), hash)
    authenticate(result)
    return result
  }
  const decrypt = (ciphertext: Uint8Array) => {
    const result = aesDecryptGCM(ciphertext, key, ivFor(counter++), hash)
    authenticate(ciphertext)
    return result
  }

  authenticate(prologue)

  return {
    /** Answers the client's hello: returns the encoded `HandshakeMessage` with our `serverHello`. */
    serverHello: (clientHello: proto.HandshakeMessage.IClientHello, certChain: Uint8Array): Uint8Array => {
      if (!clientHello.ephemeral || clientHello.ephemeral.length !== 32) {
        throw new Error("clientHello without a 32-byte ephemeral key")
      }
      clientEphemeral = clientHello.ephemeral
      authenticate(clientEphemeral)
      authenticate(ephemeral.public)
      mixIntoKey(Curve.sharedKey(ephemeral.private, clientEphemeral))
      const staticEnc = encrypt(staticKeyPair.public)
      mixIntoKey(Curve.sharedKey(staticKeyPair.private, clientEphemeral))
      const payloadEnc = encrypt(certChain)
      return proto.HandshakeMessage.encode({
        serverHello: { ephemeral: ephemeral.public, static: staticEnc, payload: payloadEnc }
      }).finish()
    },
    /** Reads the client's finish: its static (noise) key and its `ClientPayload`, then splits. */
    clientFinish: (finish: proto.HandshakeMessage.IClientFinish) => {
      if (!finish.static || !finish.payload) throw new Error("clientFinish without static key or payload")
      const clientStatic = decrypt(finish.static)
      mixIntoKey(Curve.sharedKey(ephemeral.private, clientStatic))
      const payload = proto.ClientPayload.decode(decrypt(finish.payload))
      const [clientWrite, clientRead] = split(new Uint8Array(0))
      return { clientStatic, payload, transport: makeTransport(clientRead, clientWrite) }
    }
  }
}
