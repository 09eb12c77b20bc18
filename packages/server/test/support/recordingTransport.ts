import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Queue, Redacted } from "effect"
import type { SqlClient } from "effect/sql"
import { TransportError, TransportEvent, WhatsAppTransport } from "../../src/channels/transport.ts"

export const recordingTable = "transport_connections"
export const sendsTable = "transport_sends"

/** One connection the recording transport opened, times in milliseconds on the database clock. */
export interface RecordedConnection {
  readonly channel_id: string
  readonly node_id: string
  readonly opened_at: number
  readonly closed_at: number | null
}

/** One message the recording transport sent (a resend is another row), its time on the database clock. */
export interface RecordedSend {
  readonly channel_id: string
  readonly node_id: string
  readonly whatsapp_id: string
  readonly sent_at: number
}

/** Creates the tables the recording transport writes to (once the gateway has migrated the database). */
export const createRecordingTables = (sql: SqlClient.SqlClient) =>
  sql`
    CREATE TABLE ${sql(recordingTable)} (
      id serial PRIMARY KEY, channel_id text NOT NULL, node_id text NOT NULL,
      opened_at timestamptz NOT NULL, closed_at timestamptz)`.pipe(
    Effect.andThen(sql`
      CREATE TABLE ${sql(sendsTable)} (
        id serial PRIMARY KEY, channel_id text NOT NULL, node_id text NOT NULL,
        whatsapp_id text NOT NULL, sent_at timestamptz NOT NULL)`),
    Effect.orDie,
    Effect.asVoid
  )

/** Every connection recorded so far, in the order they opened. */
export const recordedConnections = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql<RecordedConnection>`
      SELECT channel_id, node_id, (extract(epoch FROM opened_at) * 1000)::float8 AS opened_at,
        (extract(epoch FROM closed_at) * 1000)::float8 AS closed_at
      FROM ${sql(recordingTable)} ORDER BY id`,
    (rows): ReadonlyArray<RecordedConnection> => rows
  ).pipe(Effect.orDie)

/** Every send recorded so far, in the order they were made. */
export const recordedSends = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql<RecordedSend>`
      SELECT channel_id, node_id, whatsapp_id, (extract(epoch FROM sent_at) * 1000)::float8 AS sent_at
      FROM ${sql(sendsTable)} ORDER BY id`,
    (rows): ReadonlyArray<RecordedSend> => rows
  ).pipe(Effect.orDie)

/**
 * A WhatsApp for multi-process tests: every connection is recorded in a table (which node, when it
 * opened, when it closed) and logs in at once, as a paired channel would; every send is recorded in
 * another (which node, which WhatsApp id, when) and then acknowledged by the server, as WhatsApp does.
 */
export const layerRecordingTransport = (databaseUrl: string, nodeId: string) =>
  Layer.effect(
    WhatsAppTransport,
    Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      return WhatsAppTransport.of({
        connect: ({ channelId }) =>
          Effect.gen(function* () {
            const opened = yield* sql<{ id: number }>`
              INSERT INTO ${sql(recordingTable)} (channel_id, node_id, opened_at)
              VALUES (${channelId}, ${nodeId}, clock_timestamp()) RETURNING id`.pipe(Effect.orDie)
            yield* Effect.addFinalizer(() =>
              sql`UPDATE ${sql(recordingTable)} SET closed_at = clock_timestamp() WHERE id = ${opened[0]!.id}`.pipe(
                Effect.ignore
              )
            )
            const events = yield* Queue.unbounded<TransportEvent>()
            yield* Queue.offer(events, TransportEvent.Open({ phoneNumber: "+15550000000" }))
            return {
              events,
              prepare: () => Effect.succeed(new Uint8Array()),
              send: ({ id }) =>
                sql`
                  INSERT INTO ${sql(sendsTable)} (channel_id, node_id, whatsapp_id, sent_at)
                  VALUES (${channelId}, ${nodeId}, ${id}, clock_timestamp())`.pipe(
                  Effect.mapError(
                    (cause) =>
                      new TransportError({ reason: "could not record the send", retryable: true, cause })
                  ),
                  Effect.andThen(
                    Queue.offer(events, TransportEvent.ServerAck({ messageId: id, error: null }))
                  )
                ),
              markRead: () => Effect.void,
              logout: Effect.void
            }
          })
      })
    })
  ).pipe(Layer.provide(PgClient.layer({ url: Redacted.make(databaseUrl), maxConnections: 4 })))
