import { Effect, Schema } from "effect"
import type { SqlClient } from "effect/sql"

/**
 * Runs `effect` in one transaction (or joins the caller's). A SQL failure rolls it back and is a
 * defect: the caller cannot act on it, and the HTTP layer answers an unreachable database with 503.
 */
export const transaction =
  (sql: SqlClient.SqlClient) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    sql.withTransaction(effect).pipe(Effect.catchTag("SqlError", Effect.die))

/**
 * Decodes what a query returned with the row's schema, so a renamed or missing column fails loudly
 * (a defect) instead of reaching a caller as `undefined`; SQL failures are defects too.
 */
export const decodeRows = <S extends Schema.Decoder<unknown>>(row: S) => {
  let decoder = decoders.get(row)
  if (decoder === undefined) {
    decoder = Schema.decodeUnknownEffect(Schema.Array(row))
    decoders.set(row, decoder)
  }
  const decode = decoder as (rows: unknown) => Effect.Effect<ReadonlyArray<S["Type"]>, Schema.SchemaError>
  return <E, R>(
    query: Effect.Effect<ReadonlyArray<unknown>, E, R>
  ): Effect.Effect<Array<S["Type"]>, never, R> =>
    query.pipe(
      Effect.flatMap((rows) => decode(rows)),
      Effect.map((rows) => [...rows]),
      Effect.orDie
    )
}

/** One array decoder per row schema, built once. */
const decoders = new WeakMap<
  object,
  (rows: unknown) => Effect.Effect<ReadonlyArray<unknown>, Schema.SchemaError>
>()
