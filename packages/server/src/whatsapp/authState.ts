import { Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { type EncryptedColumn, KeyRing, placeIn } from "../crypto/keyRing.ts"
import { decodeRows } from "../db/transaction.ts"
import { type Fence, LeaseLost, Leases } from "../channels/leases.ts"
import { type AuthStateStore, AuthStates } from "../channels/loginStore.ts"

const StoredKey = Schema.Struct({ key_id: Schema.String, ciphertext: Schema.String })

/** The key type under which a channel's login credentials are stored. */
export const credsType = "creds"

export const authStateColumn: EncryptedColumn = {
  table: "channel_auth_state",
  key: ["channel_id", "key_type", "key_id"],
  column: "ciphertext"
}

export const layerAuthStates = Layer.effect(
  AuthStates,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const keyRing = yield* KeyRing
    const leases = yield* Leases

    yield* keyRing.register(authStateColumn)

    const forChannel = (fence: Fence): AuthStateStore => ({
      read: (type, ids) =>
        ids.length === 0
          ? Effect.succeed({})
          : sql`
              SELECT key_id, ciphertext FROM channel_auth_state
              WHERE channel_id = ${fence.channelId} AND key_type = ${type}
                AND key_id IN (SELECT jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb))`.pipe(
              decodeRows(StoredKey),
              Effect.flatMap((rows) =>
                Effect.forEach(rows, (row) =>
                  Effect.map(
                    keyRing.decrypt(
                      row.ciphertext,
                      placeIn(authStateColumn, [fence.channelId, type, row.key_id])
                    ),
                    (value) => [row.key_id, value] as const
                  )
                )
              ),
              Effect.map((entries) => Object.fromEntries(entries)),
              Effect.orDie
            ),
      // one statement, so one round trip (Baileys writes a Signal session for every message it
      // encrypts or decrypts): the lease share-locked first, then the channel, as `check` and the
      // outbox take them, and nothing written unless both hold
      write: (changes) => {
        if (changes.length === 0) return Effect.void
        const rows = changes.map((change) => ({
          type: change.type,
          id: change.id,
          ciphertext:
            change.value === null
              ? null
              : keyRing.encrypt(
                  change.value,
                  placeIn(authStateColumn, [fence.channelId, change.type, change.id])
                )
        }))
        return sql<{ held: number }>`
          WITH lease AS (${leases.holding(fence)}),
          running AS (
            SELECT 1 FROM channels
            WHERE id = ${fence.channelId} AND desired = 'running' AND EXISTS (SELECT 1 FROM lease)
            FOR SHARE
          ),
          removed AS (
            DELETE FROM channel_auth_state a
            USING jsonb_to_recordset(${JSON.stringify(rows.filter((r) => r.ciphertext === null))}::jsonb)
              AS d(type text, id text)
            WHERE a.channel_id = ${fence.channelId} AND a.key_type = d.type AND a.key_id = d.id
              AND EXISTS (SELECT 1 FROM running)
          ),
          stored AS (
            INSERT INTO channel_auth_state (channel_id, key_type, key_id, ciphertext)
            SELECT ${fence.channelId}, s.type, s.id, s.ciphertext
            FROM jsonb_to_recordset(${JSON.stringify(rows.filter((r) => r.ciphertext !== null))}::jsonb)
              AS s(type text, id text, ciphertext text)
            WHERE EXISTS (SELECT 1 FROM running)
            ON CONFLICT (channel_id, key_type, key_id) DO UPDATE SET ciphertext = excluded.ciphertext
          )
          SELECT count(*)::int AS held FROM running`.pipe(
          Effect.orDie,
          Effect.flatMap((result) =>
            result[0]?.held === 1 ? Effect.void : Effect.fail(new LeaseLost({ channelId: fence.channelId }))
          )
        )
      }
    })

    return AuthStates.of({
      forChannel,
      wipe: (channelId) =>
        sql`DELETE FROM channel_auth_state WHERE channel_id = ${channelId}`.pipe(Effect.asVoid, Effect.orDie)
    })
  })
)
