import { ChannelId } from "@whatisup/domain"
import { Context, Data, Duration, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { GatewayConfigService } from "../config/config.ts"
import { LeaseDatabase, leaseStatementTimeout } from "../db/client.ts"
import { decodeRows } from "../db/transaction.ts"
import { channelsChangedChannel } from "./rows.ts"

const LeaseRow = Schema.Struct({ channel_id: ChannelId, generation: Schema.Number })
const ClaimedRow = Schema.Struct({ ...LeaseRow.fields, previous_owner: Schema.NullOr(Schema.String) })

/** How long past a lease's expiry another node waits before taking it over: a fifth of its life. */
export const leaseGrace = (ttl: Duration.Duration) => Duration.millis(Math.floor(Duration.toMillis(ttl) / 5))

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
    /** How long past a lease's expiry another node waits before it takes the lease over. */
    readonly grace: Duration.Duration
    /** How long a renewal or heartbeat may take before it counts as failed. */
    readonly timeout: Duration.Duration
    /** Takes the leases that are free, expired (past the grace) or this node's own; says whom each was taken from. */
    readonly claim: (
      channelIds: ReadonlyArray<ChannelId>
    ) => Effect.Effect<ReadonlyArray<Fence & { readonly takenFrom: string | null }>>
    readonly renew: (held: ReadonlyArray<Fence>) => Effect.Effect<ReadonlyArray<Fence>>
    readonly release: (channelIds: ReadonlyArray<ChannelId>) => Effect.Effect<void>
    /** Inside a transaction: fails unless the fence still holds, and keeps it held until commit. */
    readonly check: (fence: Fence) => Effect.Effect<void, LeaseLost>
    /** Marks this node alive. */
    readonly heartbeat: Effect.Effect<void>
    /** How many nodes are alive now (a node that left gracefully no longer counts). */
    readonly liveNodes: Effect.Effect<number>
    /** This node stops counting among the live ones (a graceful stop), so the others' shares grow at once. */
    readonly leave: Effect.Effect<void>
  }
>()("whatisup/Leases") {}

export const layerLeases = Layer.effect(
  Leases,
  Effect.gen(function* () {
    // the fence check joins the caller's transaction; everything else runs on the leases' own connections
    const sql = yield* SqlClient.SqlClient
    const leaseSql = yield* LeaseDatabase
    const config = yield* GatewayConfigService
    const nodeId = config.nodeId
    const ttlMillis = Duration.toMillis(config.leaseTtl)
    const ttl = `${ttlMillis} milliseconds`
    const grace = leaseGrace(config.leaseTtl)
    const graceInterval = `${Duration.toMillis(grace)} milliseconds`
    const timeout = leaseStatementTimeout(config.leaseTtl)
    const json = (value: unknown) => JSON.stringify(value)
    const liveNodes = Effect.map(
      leaseSql<{
        n: number
      }>`SELECT count(*)::int AS n FROM gateway_nodes WHERE seen_at > now() - ${ttl}::interval`,
      (rows) => Math.max(1, rows[0]?.n ?? 1)
    )
    /** A lease statement that did not answer in time failed: the watchdog, not the database, decides. */
    const bounded = <A>(effect: Effect.Effect<A, unknown>) =>
      effect.pipe(Effect.timeout(timeout), Effect.orDie)

    return Leases.of({
      nodeId,
      ttl: config.leaseTtl,
      grace,
      timeout,
      claim: (channelIds) =>
        channelIds.length === 0
          ? Effect.succeed([])
          : leaseSql`
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
                WHERE channel_leases.expires_at < now() - ${graceInterval}::interval
                  OR channel_leases.owner = excluded.owner
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
          : bounded(
              leaseSql`
              UPDATE channel_leases l SET expires_at = now() + ${ttl}::interval
              FROM jsonb_to_recordset(${json(held.map((f) => ({ id: f.channelId, generation: f.generation })))}::jsonb)
                AS h(id text, generation bigint)
              WHERE l.channel_id = h.id AND l.generation = h.generation AND l.owner = ${nodeId}
              RETURNING l.channel_id, l.generation::int AS generation`.pipe(
                decodeRows(LeaseRow),
                Effect.map((rows) =>
                  rows.map((row) => ({ channelId: row.channel_id, generation: row.generation }))
                )
              )
            ),
      // a released lease is expired, never deleted, so the next owner's generation is still higher
      // the other processes hear of it at once, so a graceful stop hands the channels over at once
      release: (channelIds) =>
        channelIds.length === 0
          ? Effect.void
          : bounded(
              leaseSql`
                WITH released AS (
                  UPDATE channel_leases SET expires_at = now() - ${graceInterval}::interval - interval '1 millisecond'
                  WHERE owner = ${nodeId}
                    AND channel_id IN (SELECT jsonb_array_elements_text(${json(channelIds)}::jsonb))
                  RETURNING channel_id
                )
                SELECT pg_notify(${channelsChangedChannel}, 'released') FROM (SELECT count(*) FROM released) AS n`
            ).pipe(Effect.asVoid),
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
      heartbeat: bounded(
        Effect.asVoid(leaseSql`
          INSERT INTO gateway_nodes (node_id, seen_at) VALUES (${nodeId}, now())
          ON CONFLICT (node_id) DO UPDATE SET seen_at = now()`)
      ),
      liveNodes: bounded(liveNodes),
      leave: leaseSql`DELETE FROM gateway_nodes WHERE node_id = ${nodeId}`.pipe(
        Effect.timeout(timeout),
        Effect.asVoid,
        Effect.ignore
      )
    })
  })
)
