import { type Caller, IdempotencyKeyInUse, IdempotencyKeyReused } from "@whatisup/domain"
import { Context, Effect, Layer, Schedule, Schema } from "effect"
import { HttpEffect, HttpServerResponse } from "effect/http"
import type { HttpServerRequest } from "effect/http/HttpServerRequest"
import { SqlClient } from "effect/sql"
import { KeyRing, placeIn } from "../crypto/keyRing.ts"
import { requestHashOf, storedAnswers } from "../idempotency/answers.ts"
import { transaction } from "../db/transaction.ts"

/**
 * `Idempotency-Key` on creating POSTs, per calling API key, kept 24 hours: the same key and request
 * replay the first answer, another request with the key is refused, and a duplicate of a request
 * still in flight is told so. Another API key of the same customer has keys of its own: a stored
 * answer may hold a secret shown once, and replays only to the key that was shown it. Everything
 * happens in the creating transaction: a transaction-scoped advisory lock marks the request in
 * flight, and the stored answer (encrypted in its row) commits with what it created, so a crash
 * leaves nothing behind.
 */
export interface IdempotentRequest<A, I, E, R> {
  readonly customerId: string
  /** The calling API key: stored answers belong to it. */
  readonly apiKeyId: string
  readonly key: string | undefined
  /** What makes two requests the same: compared by hash. */
  readonly request: unknown
  /** How the answer is stored and replayed. */
  readonly response: Schema.Codec<A, I>
  /** Refuses to replay a stored answer that must no longer be shown (a secret revoked since). */
  readonly replayable?: ((answer: A) => Effect.Effect<void, E, R>) | undefined
}

type Run = <A, I, E, R, RE = never, RR = never>(
  options: IdempotentRequest<A, I, RE, RR>,
  effect: Effect.Effect<A, E, R>
) => Effect.Effect<A, E | RE | IdempotencyKeyInUse | IdempotencyKeyReused, R | RR | HttpServerRequest>

export class Idempotency extends Context.Service<Idempotency, { readonly run: Run }>()(
  "whatisup/Idempotency"
) {}

/** Marks the answer being built as a replay (`Idempotent-Replayed: true`). */
export const markReplayed = HttpEffect.appendPreResponseHandler((_request, response) =>
  Effect.succeed(HttpServerResponse.setHeader(response, "idempotent-replayed", "true"))
)

export const layerIdempotency = Layer.effect(
  Idempotency,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const keyRing = yield* KeyRing
    const inTransaction = transaction(sql)

    yield* keyRing.register(storedAnswers)

    yield* Effect.forkScoped(
      Effect.repeat(
        sql`DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'`.pipe(
          Effect.catchCause((cause) => Effect.logWarning("could not expire idempotency keys", cause))
        ),
        Schedule.spaced("1 hour")
      )
    )

    const run: Run = (options, effect) => {
      const { customerId, apiKeyId, key, response } = options
      if (key === undefined) return effect
      const requestHash = requestHashOf(options.request)
      const place = placeIn(storedAnswers, [apiKeyId, key])
      return inTransaction(
        Effect.gen(function* () {
          const locked = yield* sql<{ locked: boolean }>`
              SELECT pg_try_advisory_xact_lock(hashtext(${apiKeyId}), hashtext(${key})) AS locked`
          if (!locked[0]?.locked) {
            return yield* new IdempotencyKeyInUse({
              detail: "The first request with this Idempotency-Key has not finished; retry later"
            })
          }
          const stored = yield* sql<{ request_hash: string; response_ciphertext: string }>`
              SELECT request_hash, response_ciphertext FROM idempotency_keys
              WHERE api_key_id = ${apiKeyId} AND key = ${key} AND created_at > now() - interval '24 hours'`
          const first = stored[0]
          if (first !== undefined) {
            if (first.request_hash !== requestHash) {
              return yield* new IdempotencyKeyReused({
                detail: "This Idempotency-Key was first used with a different request"
              })
            }
            const body = yield* keyRing.decrypt(first.response_ciphertext, place).pipe(Effect.orDie)
            const answer = yield* Schema.decodeUnknownEffect(Schema.fromJsonString(response))(body).pipe(
              Effect.orDie
            )
            if (options.replayable !== undefined) yield* options.replayable(answer)
            yield* markReplayed
            return answer
          }
          const value = yield* effect
          const encoded = yield* Schema.encodeEffect(Schema.fromJsonString(response))(value).pipe(
            Effect.orDie
          )
          yield* sql`
              INSERT INTO idempotency_keys (api_key_id, key, customer_id, request_hash, response_ciphertext)
              VALUES (${apiKeyId}, ${key}, ${customerId}, ${requestHash}, ${keyRing.encrypt(encoded, place)})
              ON CONFLICT (api_key_id, key) DO UPDATE
                SET customer_id = excluded.customer_id, request_hash = excluded.request_hash,
                    response_ciphertext = excluded.response_ciphertext, created_at = now()`
          return value
        })
      )
    }

    return Idempotency.of({ run })
  })
)

/**
 * A creating POST made idempotent: its key is the request's `Idempotency-Key` header, scoped to the
 * calling API key; the route and the payload make the request.
 */
export const idempotentCreate = <A, I, E, R, RE = never, RR = never>(
  route: string,
  response: Schema.Codec<A, I>,
  request: {
    readonly headers: { readonly "idempotency-key"?: string | undefined }
    readonly payload: unknown
  },
  caller: Caller["Service"],
  create: Effect.Effect<A, E, R>,
  replayable?: (answer: A) => Effect.Effect<void, RE, RR>
) =>
  Idempotency.use((idempotency) =>
    idempotency.run(
      {
        customerId: caller.customerId,
        apiKeyId: caller.keyId,
        key: request.headers["idempotency-key"],
        request: [route, request.payload],
        response,
        replayable
      },
      create
    )
  )
