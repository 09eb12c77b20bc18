import { Effect } from "effect"
import { SqlClient } from "effect/sql"

/**
 * Secrets at rest (issue 9): a QR's fourth field is the device's adv secret, so events keep a QR
 * encrypted in `secret_ciphertext` and list only when it expires. The QRs already listed in clear
 * belong to pairings long over (a QR lives a minute at most): they are stripped, not encrypted.
 * Stored idempotent answers now belong to the API key that made them; those stored before cannot be
 * told apart by key and are dropped (they lived 24 hours). Ciphertexts written before they were
 * bound to their place are bound at start-up by the key ring (`KeyRing.register`), which holds the
 * master keys that a migration does not.
 */
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE events ADD COLUMN secret_ciphertext text`
  yield* sql`UPDATE events SET data = data - 'qr' WHERE type = 'channel.qr'`
  yield* sql`DELETE FROM idempotency_keys`
  yield* sql`ALTER TABLE idempotency_keys ADD COLUMN api_key_id text NOT NULL`
  yield* sql`ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey`
  yield* sql`ALTER TABLE idempotency_keys ADD PRIMARY KEY (api_key_id, key)`
})
