import { ChannelId } from "@whatisup/domain"
import { Context, Data, Duration, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { GatewayConfigService } from "../config/config.ts"
import { decodeRows } from "../db/transaction.ts"

const LeaseRow = Schema.Struct({ channel_id: ChannelId, generation: Schema.Number })
const ClaimedRow = Schema.Struct({ ...LeaseRow.fields, previous_owner: Schema.NullOr(Schema.String) })

/** The lease a process held when it wrote: a write under an older generation is refused. */
export interface Fence {
  readonly channelId: ChannelId
  readonly generation: number
}

export class LeaseLost extends Data.TaggedError("LeaseLost")<{ readonly channelId: ChannelId }> {}

/**
 * Channel ownership: at most one process runs a channel, the one holding its lease. Leases expire
 * unless renewed; a process that restarts with the same node id takes its own back at once, under
 * a new generation, so anything its previous life still tries to write is fenced off.
 */
export class Leases extends Context.Service<
  Leases,
  {
    readonly nodeId: string
    readonly ttl: Duration.Duration
    /** Takes the leases that are free, expired or this node's own; says whom each was taken from. */
    readonly claim: (
      channelIds: ReadonlyArray<ChannelId>
    ) => Effect.Effect<ReadonlyArray<Fence & { readonly takenFrom: string | null }>>
    readonly renew: (held: ReadonlyArray<Fence>) => Effect.Effect<ReadonlyArray<Fence>>
    readonly release: (channelIds: ReadonlyArray<ChannelId>) => Effect.Effect<void>
    /** Inside a transaction: fails unless the fence still holds, and keeps it held until commit. */
    readonly check: (fence: Fence) => Effect.Effect<void, LeaseLost>
    /** Marks this node alive and says how many nodes are. */
    readonly heartbeat: Effect.Effect<number>
    /** This node stops counting among the live ones (a graceful stop), so the others' shares grow at once. */
    readonly leave: Effect.Effect<void>
  }
>()("whatisup/Leases") {}

export const layerLeases = Layer.effect(
  Leases,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const config = yield* GatewayConfigService
    const nodeId = config.nodeId
    const ttlMillis = Duration.toMillis(config.leaseTtl)
    const ttl = `${ttlMillis} milliseconds`
    const json = (value: unknown) => JSON.stringify(value)

    return Leases.of({
      nodeId,
      ttl: config.leaseTtl,
      claim: (channelIds) =>
        channelIds.length === 0
          ? Effect.succeed([])
          : sql`
              WITH previous AS (
                SELECT channel_id, owner FROM channel_leases
                WHERE channel_id IN (SELECT jsonb_array_elements_text(${json(channelIds)}::jsonb))
              )
              INSERT INTO channel_leases (channel_id, owner, generation, expires_at)
              SELECT id, ${nodeId}, 1, now() + ${ttl}::interval
              FROM jsonb_array_elements_text(${json(channelIds)}::jsonb) AS id
              ON CONFLICT (channel_id) DO UPDATE
                SET owner = excluded.owner, generation = channel_leases.generation + 1,
                    expires_at = excluded.expires_at
                WHERE channel_leases.expires_at < now() OR channel_leases.owner = excluded.owner
              RETURNING channel_id, generation::int AS generation,
                (SELECT owner FROM previous p WHERE p.channel_id = channel_leases.channel_id) AS previous_owner`.pipe(
              decodeRows(ClaimedRow),
              Effect.map((rows) =>
                rows.map((row) => ({
                  channelId: row.channel_id,
                  generation: row.generation,
                  takenFrom: row.previous_owner === nodeId ? null : row.previous_owner
                }))
              )
            ),
      renew: (held) =>
        held.length === 0
          ? Effect.succeed([])
          : sql`
              UPDATE channel_leases l SET expires_at = now() + ${ttl}::interval
              FROM jsonb_to_recordset(${json(held.map((f) => ({ id: f.channelId, generation: f.generation })))}::jsonb)
                AS h(id text, generation bigint)
              WHERE l.channel_id = h.id AND l.generation = h.generation AND l.owner = ${nodeId}
              RETURNING l.channel_id, l.generation::int AS generation`.pipe(
              decodeRows(LeaseRow),
              Effect.map((rows) =>
                rows.map((row) => ({ channelId: row.channel_id, generation: row.generation }))
              )
            ),
      // a released lease is expired, never deleted, so the next owner's generation is still higher
      release: (channelIds) =>
        channelIds.length === 0
          ? Effect.void
          : sql`
              UPDATE channel_leases SET expires_at = now() - interval '1 millisecond'
              WHERE owner = ${nodeId}
                AND channel_id IN (SELECT jsonb_array_elements_text(${json(channelIds)}::jsonb))`.pipe(
              Effect.asVoid,
              Effect.orDie
            ),
      check: (fence) =>
        Effect.flatMap(
          sql<{ held: boolean }>`
            SELECT true AS held FROM channel_leases
            WHERE channel_id = ${fence.channelId} AND owner = ${nodeId} AND generation = ${fence.generation}
              AND expires_at > now()
            FOR SHARE`.pipe(Effect.orDie),
          (rows) =>
            rows.length === 0 ? Effect.fail(new LeaseLost({ channelId: fence.channelId })) : Effect.void
        ),
      heartbeat: Effect.gen(function* () {
        yield* sql`
          INSERT INTO gateway_nodes (node_id, seen_at) VALUES (${nodeId}, now())
          ON CONFLICT (node_id) DO UPDATE SET seen_at = now()`
        const live = yield* sql<{ n: number }>`
          SELECT count(*)::int AS n FROM gateway_nodes WHERE seen_at > now() - ${ttl}::interval`
        return Math.max(1, live[0]?.n ?? 1)
      }).pipe(Effect.orDie),
      leave: sql`DELETE FROM gateway_nodes WHERE node_id = ${nodeId}`.pipe(Effect.asVoid, Effect.ignore)
    })
  })
)
