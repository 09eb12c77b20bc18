import { Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { type EncryptedColumn, KeyRing, placeIn } from "../crypto/keyRing.ts"
import { decodeRows, transaction } from "../db/transaction.ts"
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
    const inTransaction = transaction(sql)

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
      write: (changes) =>
        changes.length === 0
          ? Effect.void
          : inTransaction(
              Effect.gen(function* () {
                yield* leases.check(fence)
                const running = yield* sql`
                    SELECT 1 FROM channels WHERE id = ${fence.channelId} AND desired = 'running' FOR SHARE`.pipe(
                  Effect.orDie
                )
                if (running.length === 0) return yield* new LeaseLost({ channelId: fence.channelId })
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
                yield* sql`
                    DELETE FROM channel_auth_state a
                    USING jsonb_to_recordset(${JSON.stringify(rows.filter((r) => r.ciphertext === null))}::jsonb)
                      AS d(type text, id text)
                    WHERE a.channel_id = ${fence.channelId} AND a.key_type = d.type AND a.key_id = d.id`.pipe(
                  Effect.orDie
                )
                yield* sql`
                    INSERT INTO channel_auth_state (channel_id, key_type, key_id, ciphertext)
                    SELECT ${fence.channelId}, s.type, s.id, s.ciphertext
                    FROM jsonb_to_recordset(${JSON.stringify(rows.filter((r) => r.ciphertext !== null))}::jsonb)
                      AS s(type text, id text, ciphertext text)
                    ON CONFLICT (channel_id, key_type, key_id) DO UPDATE SET ciphertext = excluded.ciphertext`.pipe(
                  Effect.orDie
                )
              })
            )
    })

    return AuthStates.of({
      forChannel,
      wipe: (channelId) =>
        sql`DELETE FROM channel_auth_state WHERE channel_id = ${channelId}`.pipe(Effect.asVoid, Effect.orDie)
    })
  })
)
