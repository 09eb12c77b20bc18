import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Queue, Redacted } from "effect"
import { TransportEvent, WhatsAppTransport } from "../../src/channels/transport.ts"

export const recordingTable = "transport_connections"

/**
 * A WhatsApp for multi-process tests: every connection is recorded in a table (which node, when it
 * opened, when it closed) and logs in at once, as a paired channel would.
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
            return { events, send: () => Effect.void, logout: Effect.void }
          })
      })
    })
  ).pipe(Layer.provide(PgClient.layer({ url: Redacted.make(databaseUrl), maxConnections: 4 })))
