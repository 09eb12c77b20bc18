import { type Caller, IdempotencyKeyInUse, IdempotencyKeyReused } from "@whatisup/domain"
import { Context, Effect, Layer, Schedule, Schema } from "effect"
import { HttpEffect, HttpServerResponse } from "effect/http"
import type { HttpServerRequest } from "effect/http/HttpServerRequest"
import { SqlClient } from "effect/sql"
import * as crypto from "node:crypto"
import { KeyRing } from "../crypto/keyRing.ts"
import { transaction } from "../db/transaction.ts"

/**
 * `Idempotency-Key` on creating POSTs, per customer, kept 24 hours: the same key and request replay
 * the first answer, another request with the key is refused, and a duplicate of a request still in
 * flight is told so. Everything happens in the creating transaction: a transaction-scoped advisory
 * lock marks the request in flight, and the stored answer (encrypted: it may hold a secret shown
 * once) commits with what it created, so a crash leaves nothing behind.
 */
export interface IdempotentRequest<A, I> {
  readonly customerId: string
  readonly key: string | undefined
  /** What makes two requests the same: compared by hash. */
  readonly request: unknown
  /** How the answer is stored and replayed. */
  readonly response: Schema.Codec<A, I>
}

type Run = <A, I, E, R>(
  options: IdempotentRequest<A, I>,
  effect: Effect.Effect<A, E, R>
) => Effect.Effect<A, E | IdempotencyKeyInUse | IdempotencyKeyReused, R | HttpServerRequest>

export class Idempotency extends Context.Service<Idempotency, { readonly run: Run }>()(
  "whatisup/Idempotency"
) {}

export const layerIdempotency = Layer.effect(
  Idempotency,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const keyRing = yield* KeyRing
    const inTransaction = transaction(sql)

    yield* keyRing.register({
      table: "idempotency_keys",
      key: ["customer_id", "key"],
      column: "response_ciphertext"
    })

    yield* Effect.forkScoped(
      Effect.repeat(
        sql`DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'`.pipe(
          Effect.catchCause((cause) => Effect.logWarning("could not expire idempotency keys", cause))
        ),
        Schedule.spaced("1 hour")
      )
    )

    const markReplayed = HttpEffect.appendPreResponseHandler((_request, response) =>
      Effect.succeed(HttpServerResponse.setHeader(response, "idempotent-replayed", "true"))
    )

    const run: Run = (options, effect) => {
      const { customerId, key, response } = options
      if (key === undefined) return effect
      const requestHash = crypto
        .createHash("sha256")
        .update(JSON.stringify(options.request))
        .digest("base64url")
      return inTransaction(
        Effect.gen(function* () {
          const locked = yield* sql<{ locked: boolean }>`
              SELECT pg_try_advisory_xact_lock(hashtext(${customerId}), hashtext(${key})) AS locked`
          if (!locked[0]?.locked) {
            return yield* new IdempotencyKeyInUse({
              detail: "The first request with this Idempotency-Key has not finished; retry later"
            })
          }
          const stored = yield* sql<{ request_hash: string; response_ciphertext: string }>`
              SELECT request_hash, response_ciphertext FROM idempotency_keys
              WHERE customer_id = ${customerId} AND key = ${key} AND created_at > now() - interval '24 hours'`
          const first = stored[0]
          if (first !== undefined) {
            if (first.request_hash !== requestHash) {
              return yield* new IdempotencyKeyReused({
                detail: "This Idempotency-Key was first used with a different request"
              })
            }
            const body = yield* keyRing.decrypt(first.response_ciphertext).pipe(Effect.orDie)
            yield* markReplayed
            return yield* Schema.decodeUnknownEffect(Schema.fromJsonString(response))(body).pipe(Effect.orDie)
          }
          const value = yield* effect
          const encoded = yield* Schema.encodeEffect(Schema.fromJsonString(response))(value).pipe(
            Effect.orDie
          )
          yield* sql`
              INSERT INTO idempotency_keys (customer_id, key, request_hash, response_ciphertext)
              VALUES (${customerId}, ${key}, ${requestHash}, ${keyRing.encrypt(encoded)})
              ON CONFLICT (customer_id, key) DO UPDATE
                SET request_hash = excluded.request_hash, response_ciphertext = excluded.response_ciphertext,
                    created_at = now()`
          return value
        })
      )
    }

    return Idempotency.of({ run })
  })
)

/**
 * A creating POST made idempotent: its key is the request's `Idempotency-Key` header, scoped to the
 * caller's customer; the route and the payload make the request.
 */
export const idempotentCreate = <A, I, E, R>(
  route: string,
  response: Schema.Codec<A, I>,
  request: {
    readonly headers: { readonly "idempotency-key"?: string | undefined }
    readonly payload: unknown
  },
  caller: Caller["Service"],
  create: Effect.Effect<A, E, R>
) =>
  Idempotency.use((idempotency) =>
    idempotency.run(
      {
        customerId: caller.customerId,
        key: request.headers["idempotency-key"],
        request: [route, request.payload],
        response
      },
      create
    )
  )
