import { Curve, proto, WA_CERT_DETAILS, type KeyPair } from "@whiskeysockets/baileys"

/**
 * The Noise certificate chain the server proves its static key with. The intermediate cannot carry
 * WhatsApp's real root signature; Baileys rc14 only asks libsignal whether a 64-byte signature is
 * well formed, and checks the issuer serial. The leaf is signed properly by the intermediate.
 */
export const makeCertChain = (serverStatic: KeyPair): Uint8Array => {
  const intermediateKey = Curve.generateKeyPair()
  const now = Math.floor(Date.now() / 1000)
  const intermediateDetails = proto.CertChain.NoiseCertificate.Details.encode({
    serial: 1,
    issuerSerial: WA_CERT_DETAILS.SERIAL,
    key: intermediateKey.public,
    notBefore: now - 3600,
    notAfter: now + 365 * 24 * 3600
  }).finish()
  const leafDetails = proto.CertChain.NoiseCertificate.Details.encode({
    serial: 2,
    issuerSerial: 1,
    key: serverStatic.public,
    notBefore: now - 3600,
    notAfter: now + 365 * 24 * 3600
  }).finish()
  return proto.CertChain.encode({
    intermediate: { details: intermediateDetails, signature: Buffer.alloc(64) },
    leaf: { details: leafDetails, signature: Curve.sign(intermediateKey.private, leafDetails) }
  }).finish()
}
