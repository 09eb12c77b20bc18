import * as crypto from "node:crypto"
import type { EncryptedColumn } from "../crypto/keyRing.ts"

/** Stored answers of requests with an Idempotency-Key, encrypted in their row (one may hold a secret shown once). */
export const storedAnswers: EncryptedColumn = {
  table: "idempotency_keys",
  key: ["api_key_id", "key"],
  column: "response_ciphertext"
}

/** What makes two requests with one key the same: the hash of the route and the payload. */
export const requestHashOf = (request: unknown) =>
  crypto.createHash("sha256").update(JSON.stringify(request)).digest("base64url")
