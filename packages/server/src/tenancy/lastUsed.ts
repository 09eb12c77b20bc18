import type { ApiKeyId } from "@whatisup/domain"
import { Effect, Schedule } from "effect"
import { SqlClient } from "effect/sql"

const flushInterval = "5 seconds"

/**
 * `last_used_at` of API keys, recorded in batches rather than with a write per request: flushed
 * every few seconds and when the enclosing scope closes.
 */
export const makeLastUsed = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  let pending = new Map<ApiKeyId, number>()

  const flush = Effect.suspend(() => {
    if (pending.size === 0) return Effect.void
    const batch = pending
    pending = new Map()
    const rows = [...batch].map(([id, at]) => ({ id, at: new Date(at).toISOString() }))
    return sql`
      UPDATE api_keys k SET last_used_at = v.at
      FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS v(id text, at timestamptz)
      WHERE k.id = v.id AND (k.last_used_at IS NULL OR k.last_used_at < v.at)`.pipe(
      Effect.asVoid,
      Effect.catchCause((cause) =>
        Effect.andThen(
          // keep the batch for the next flush; newer uses win
          Effect.sync(() => {
            for (const [id, at] of batch) if ((pending.get(id) ?? 0) < at) pending.set(id, at)
          }),
          Effect.logWarning("could not record last_used_at; will retry", cause)
        )
      )
    )
  })

  yield* Effect.forkScoped(Effect.repeat(flush, Schedule.spaced(flushInterval)))
  yield* Effect.addFinalizer(() => flush)

  return {
    touch: (keyId: ApiKeyId) => void pending.set(keyId, Date.now()),
    flush
  }
})
