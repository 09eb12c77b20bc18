import { IdempotencyKeyInUse, IdempotencyKeyReused } from "@whatisup/domain"
import { Context, Effect, Exit, Layer, Schedule, Schema } from "effect"
import { HttpEffect, HttpServerResponse } from "effect/http"
import { SqlClient } from "effect/sql"
import * as crypto from "node:crypto"

interface ClaimRow {
  readonly request_hash: string
  readonly response_body: unknown
  readonly completed_at: Date | null
}

/**
 * `Idempotency-Key` on creating POSTs, per customer, kept 24 hours: the same key and request replay
 * the first answer, another request with the key is refused, and a duplicate of a request still in
 * flight is told so. The stored answer commits in the same transaction as what it created.
 */
export class Idempotency extends Context.Service<
  Idempotency,
  {
    readonly run: <A, I, E, R>(
      options: {
        readonly customerId: string
        readonly key: string | undefined
        readonly request: unknown
        readonly response: Schema.Codec<A, I>
      },
      effect: Effect.Effect<A, E, R>
    ) => Effect.Effect<A, E | IdempotencyKeyInUse | IdempotencyKeyReused, R>
  }
>()("whatisup/Idempotency") {}

export const layerIdempotency = Layer.effect(
  Idempotency,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    yield* Effect.forkScoped(
      Effect.repeat(
        sql`DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'`.pipe(
          Effect.catchCause((cause) => Effect.logWarning("could not expire idempotency keys", cause))
        ),
        Schedule.spaced("1 hour")
      )
    )

    return Idempotency.of({
      run: ({ customerId, key, request, response }, effect) => {
        if (key === undefined) return effect
        const requestHash = crypto.createHash("sha256").update(JSON.stringify(request)).digest("base64url")
        return Effect.gen(function* () {
          const claimed = yield* sql`
            INSERT INTO idempotency_keys (customer_id, key, request_hash)
            VALUES (${customerId}, ${key}, ${requestHash})
            ON CONFLICT (customer_id, key) DO UPDATE
              SET request_hash = excluded.request_hash, created_at = now(), completed_at = NULL,
                  response_body = NULL, response_status = NULL
              WHERE idempotency_keys.created_at < now() - interval '24 hours'
            RETURNING 1`.pipe(Effect.orDie)
          if (claimed.length === 0) {
            const rows = yield* sql<ClaimRow>`
              SELECT request_hash, response_body, completed_at FROM idempotency_keys
              WHERE customer_id = ${customerId} AND key = ${key}`.pipe(Effect.orDie)
            const row = rows[0]
            if (row === undefined || row.completed_at === null) {
              return yield* new IdempotencyKeyInUse({
                detail: "The first request with this Idempotency-Key has not finished; retry later"
              })
            }
            if (row.request_hash !== requestHash) {
              return yield* new IdempotencyKeyReused({
                detail: "This Idempotency-Key was first used with a different request"
              })
            }
            yield* HttpEffect.appendPreResponseHandler((_request, res) =>
              Effect.succeed(HttpServerResponse.setHeader(res, "idempotent-replayed", "true"))
            ).pipe(Effect.catchCause(() => Effect.void))
            return yield* Schema.decodeUnknownEffect(response)(row.response_body).pipe(Effect.orDie)
          }
          return yield* sql
            .withTransaction(
              Effect.tap(effect, (value) =>
                Effect.flatMap(
                  Schema.encodeEffect(response)(value),
                  (body) =>
                    sql`
                    UPDATE idempotency_keys
                    SET response_body = ${JSON.stringify(body)}::jsonb, response_status = 200, completed_at = now()
                    WHERE customer_id = ${customerId} AND key = ${key}`
                ).pipe(Effect.orDie)
              )
            )
            .pipe(
              Effect.catchTag("SqlError", Effect.die),
              Effect.onExit((exit) =>
                Exit.isSuccess(exit)
                  ? Effect.void
                  : sql`DELETE FROM idempotency_keys WHERE customer_id = ${customerId} AND key = ${key}`.pipe(
                      Effect.ignore
                    )
              )
            )
        }) as Effect.Effect<any, any, any>
      }
    })
  })
)
