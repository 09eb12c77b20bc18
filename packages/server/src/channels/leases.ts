import { ChannelId } from "@whatisup/domain"
import { type Cause, Context, Data, Duration, Effect, Layer, Schema, type Scope } from "effect"
import { SqlClient, type SqlError, type Statement } from "effect/sql"
import * as crypto from "node:crypto"
import { GatewayConfigService } from "../config/config.ts"
import { LeaseDatabase, LeaseSession, leaseStatementTimeout } from "../db/client.ts"
import { decodeRows } from "../db/transaction.ts"
import { channelsChangedChannel } from "./rows.ts"
import { runningStatuses } from "./status.ts"

const CandidateRow = Schema.Struct({
  id: ChannelId,
  run_epoch: Schema.Number,
  generation: Schema.NullOr(Schema.Number)
})

const ClaimedRow = Schema.Struct({
  channel_id: ChannelId,
  generation: Schema.Number,
  previous_owner: Schema.NullOr(Schema.String)
})

/** How long past a lease's expiry another node waits before taking it over: a fifth of its life. */
export const leaseGrace = (ttl: Duration.Duration) => Duration.millis(Math.floor(Duration.toMillis(ttl) / 5))

/** The lease a process held when it wrote: a write under an older generation is refused. */
export interface Fence {
  readonly channelId: ChannelId
  readonly generation: number
}

/** A channel as the reconciler found it: free, or held by a node that lapsed, under this generation (null: never leased). */
export interface Claimable {
  readonly channelId: ChannelId
  readonly generation: number | null
}

/**
 * The first key of every node's presence lock (PostgreSQL's two-key advisory locks), so that the
 * gateway's locks are told apart from anyone else's in the database. The second is the node's own.
 */
export const presenceLockClass = 0x57495550

/** A node's presence: its lock, held on a database session of its own for as long as the scope lasts. */
export interface Presence {
  /** The second key of the lock, recorded with the node's lease when it joins. */
  readonly key: number
  /**
   * One statement on the session: once it succeeds, the lock was held when it was sent (see
   * `presenceVouches`); it fails once the session has ended, or times out. With `judge`, cuts short
   * the lease of every other node whose presence lock nobody holds (the others hear of it at once).
   */
  readonly check: (judge: boolean) => Effect.Effect<void, SqlError.SqlError | Cause.TimeoutError>
}

/** How often the watchdog of a node's actors looks at the time: a fiftieth of the lease, 20 to 100 ms. */
export const watchdogEvery = (ttl: Duration.Duration) =>
  Duration.millis(Math.max(20, Math.min(100, Duration.toMillis(ttl) / 50)))

/** What a node needs to close its sockets once its deadline has passed: a watchdog's look twice, and 100 ms. */
export const presenceCloseAllowance = (ttl: Duration.Duration) =>
  Duration.millis(2 * Duration.toMillis(watchdogEvery(ttl)) + 100)

/** How often a node checks its presence session (and judges the others'): a twentieth of the lease, at most 250 ms. */
export const presenceCheckEvery = (ttl: Duration.Duration) =>
  Duration.millis(Math.max(50, Math.min(250, Math.floor(Duration.toMillis(ttl) / 20))))

/**
 * How long after a presence check was sent, one that succeeded, a node keeps its channels without
 * another: a check's period and time, and half a grace. Past it, its session may have ended unseen
 * (a check on a socket gone silent fails only seconds after its time), and every actor stops.
 */
export const presenceVouches = (ttl: Duration.Duration) =>
  Duration.millis(
    Duration.toMillis(presenceCheckEvery(ttl)) +
      Duration.toMillis(leaseStatementTimeout(ttl)) +
      Duration.toMillis(leaseGrace(ttl)) / 2
  )

/**
 * How far ahead of the moment it is judged a node's lease is cut (the others wait the grace on top):
 * so that the others claim only once what the node's last good check vouched for has run out, and
 * its sockets are closed (`presenceCloseAllowance`: its watchdog's period and the sockets' close).
 */
export const presenceCutDelay = (ttl: Duration.Duration) =>
  Duration.millis(
    Math.max(
      0,
      Duration.toMillis(presenceVouches(ttl)) +
        Duration.toMillis(presenceCloseAllowance(ttl)) -
        Duration.toMillis(leaseGrace(ttl))
    )
  )

export class LeaseLost extends Data.TaggedError("LeaseLost")<{ readonly channelId: ChannelId }> {}

/**
 * Channel ownership: at most one process runs a channel, the one holding its lease. Each node holds
 * one lease of its own (one row, renewed every tick however many channels it runs); a channel's
 * lease is its owner and a generation, held while the owner's node lease is. Taking a channel bumps
 * its generation (compared and set, so two nodes never both take it), which fences off anything an
 * earlier owner still tries to write. A node whose lease lapsed has lost every channel: it closes
 * them all, joins again with a fresh lease, and takes channels back like anyone else.
 *
 * A member also holds a presence lock on a database session of its own, which it checks every
 * `presenceCheckEvery`. When its process dies the server ends that session and the lock goes with it:
 * the others, checking theirs, cut the dead node's lease short (to `presenceCutDelay` from then, not
 * when it would have run out) and take its channels once the grace has passed too. A live node keeps
 * its channels only while a good check vouches for its session (`presenceVouches`); one whose check
 * failed takes its lock back and renews within half a grace, or stops every channel, as if its lease
 * had lapsed.
 */
export class Leases extends Context.Service<
  Leases,
  {
    readonly nodeId: string
    readonly ttl: Duration.Duration
    /** How long past a lease's expiry another node waits before it takes the lease over. */
    readonly grace: Duration.Duration
    /**
     * Opens a session of the node's own and takes a presence lock on it, held until the scope closes or
     * the session ends: under the key `preferred` if it comes free within a moment (the node's own
     * again, after its session ended), else under a new one.
     */
    readonly presence: (
      preferred?: number
    ) => Effect.Effect<Presence, SqlError.SqlError | Cause.TimeoutError, Scope.Scope>
    /** Starts this node's lease afresh, under the presence lock of key `presenceKey` (at start, or after it lapsed). */
    readonly join: (presenceKey: number) => Effect.Effect<void>
    /**
     * Extends this node's lease; false when it had already lapsed (every channel it held is lost). A
     * lease cut short renews until the moment it was cut to: the claims that would follow check the row.
     */
    readonly renew: Effect.Effect<boolean>
    /**
     * Up to `limit` channels that should run and that this node may take (free, its own, or held by
     * a node whose lease lapsed past the grace), apart from `excluding`, with their run epoch.
     */
    readonly claimable: (
      limit: number,
      excluding: ReadonlyArray<ChannelId>
    ) => Effect.Effect<ReadonlyArray<Claimable & { readonly runEpoch: number }>>
    /**
     * Takes channels that are free, this node's own, or held by a node whose lease lapsed past the
     * grace, as long as this node's lease is live; says whom each was taken from. Each is taken only
     * under the generation the caller saw: one that someone took meanwhile is left out.
     */
    readonly claim: (
      channels: ReadonlyArray<Claimable>
    ) => Effect.Effect<ReadonlyArray<Fence & { readonly takenFrom: string | null }>>
    /** Hands channels back (their actors have stopped); the other nodes hear of it at once. */
    readonly release: (channelIds: ReadonlyArray<ChannelId>) => Effect.Effect<void>
    /** Hands back every channel this node owns but does not run (all but `running`). */
    readonly releaseAllBut: (running: ReadonlyArray<ChannelId>) => Effect.Effect<void>
    /** Inside a transaction: fails unless the fence still holds, and keeps it held until commit. */
    readonly check: (fence: Fence) => Effect.Effect<void, LeaseLost>
    /**
     * A query that yields a row while the fence's lease holds, its lease row share-locked as `check`
     * does: for a write that checks the lease in its own statement (`WITH lease AS (...)`).
     */
    readonly holding: (fence: Fence) => Statement.Fragment
    /**
     * A query that yields the channel id and generation of each of `fences` whose lease holds, those
     * lease rows share-locked as `check` does: `holding` for several channels at once.
     */
    readonly holdingAll: (fences: ReadonlyArray<Fence>) => Statement.Fragment
    /** How many nodes are alive now (a node that left gracefully or lapsed no longer counts). */
    readonly liveNodes: Effect.Effect<number>
    /** How long until another node's lease lapses past the grace, if one is live now. */
    readonly nextLapse: Effect.Effect<Duration.Duration | undefined>
    /** This node stops counting among the live ones (a graceful stop), so the others' shares grow at once. */
    readonly leave: Effect.Effect<void>
  }
>()("whatisup/Leases") {}

export const layerLeases = Layer.effect(
  Leases,
  Effect.gen(function* () {
    // the fence check joins the caller's transaction and the search for claimable channels is a
    // plain read; everything else runs on the leases' own connections
    const sql = yield* SqlClient.SqlClient
    const leaseSql = yield* LeaseDatabase
    const openSession = yield* LeaseSession
    const config = yield* GatewayConfigService
    const nodeId = config.nodeId
    const ttl = `${Duration.toMillis(config.leaseTtl)} milliseconds`
    const grace = leaseGrace(config.leaseTtl)
    const graceInterval = `${Duration.toMillis(grace)} milliseconds`
    const timeout = leaseStatementTimeout(config.leaseTtl)
    const cutDelay = `${Duration.toMillis(presenceCutDelay(config.leaseTtl))} milliseconds`
    const json = (value: unknown) => JSON.stringify(value)
    /** A lease statement that did not answer in time failed: the watchdog, not the database, decides. */
    const bounded = <A>(effect: Effect.Effect<A, unknown>) =>
      effect.pipe(Effect.timeout(timeout), Effect.orDie)
    /** The other nodes hear of handed-back channels at once. */
    const released = (rows: ReadonlyArray<unknown>) =>
      rows.length === 0
        ? Effect.void
        : Effect.asVoid(leaseSql`SELECT pg_notify(${channelsChangedChannel}, 'released')`)

    /**
     * Hands back this node's leases of the channels `which` picks. A released lease keeps its generation,
     * so the next owner's is higher; its rows are locked in channel order, as every statement that
     * locks several takes them.
     */
    const releaseOwned = (which: Statement.Fragment) =>
      bounded(
        Effect.flatMap(
          leaseSql`
            WITH mine AS (
              SELECT channel_id FROM channel_leases WHERE owner = ${nodeId} AND ${which}
              ORDER BY channel_id FOR UPDATE
            )
            UPDATE channel_leases l SET owner = NULL FROM mine
            WHERE l.channel_id = mine.channel_id
            RETURNING l.channel_id`,
          released
        )
      )

    return Leases.of({
      nodeId,
      ttl: config.leaseTtl,
      grace,
      // a key nobody in the database holds (another deployment may share it)
      presence: (preferred) =>
        Effect.gen(function* () {
          const session = yield* openSession
          const locked = (key: number) =>
            Effect.map(
              session.query("SELECT pg_try_advisory_lock($1, $2) AS locked", [presenceLockClass, key]),
              (result) => result.rows[0]?.locked === true
            )
          let key: number | undefined
          // the node's own key again: the server may not have let go of the ended session's lock yet
          for (let attempt = 0; preferred !== undefined && key === undefined && attempt < 5; attempt++) {
            if (attempt > 0) yield* Effect.sleep(Duration.millis(Duration.toMillis(grace) / 10))
            if (yield* locked(preferred)) key = preferred
          }
          for (let attempt = 0; key === undefined; attempt++) {
            if (attempt === 8) return yield* Effect.die(new Error("no free presence lock after 8 tries"))
            const candidate = crypto.randomInt(1, 2 ** 31 - 1)
            if (yield* locked(candidate)) key = candidate
          }
          const presenceKey = key
          // the judge takes each key's lock for its own transaction: a node taking its lock back this
          // moment does so after the judgement, not in the middle of it, and a node whose lock is held is
          // not judged (nor its row locked: a check with nobody to judge writes nothing). A row being
          // written (a renewal) is skipped, not waited for: judged at the next check
          const judged = `
            WITH candidate AS (
              SELECT node_id FROM gateway_nodes
              WHERE CASE WHEN node_id <> $1 AND presence IS NOT NULL
                  AND expires_at > clock_timestamp() + $3::interval
                THEN pg_try_advisory_xact_lock($2, presence) ELSE false END
              FOR UPDATE SKIP LOCKED
            ), ended AS (
              UPDATE gateway_nodes n SET expires_at = clock_timestamp() + $3::interval
              FROM candidate c WHERE n.node_id = c.node_id
              RETURNING n.node_id
            )
            SELECT count(*) AS n FROM (SELECT pg_notify($4, 'ended') FROM ended) told`
          return {
            key: presenceKey,
            check: (judge) =>
              Effect.asVoid(
                judge
                  ? session.query(
                      judged,
                      [nodeId, presenceLockClass, cutDelay, channelsChangedChannel],
                      false
                    )
                  : session.query("SELECT 1", [], false)
              ).pipe(Effect.timeout(timeout))
          } satisfies Presence
        }).pipe(Effect.timeout(config.leaseTtl)),
      // the others hear of it at once: their fair shares shrink, and they hand channels over
      join: (presenceKey) =>
        bounded(
          Effect.asVoid(leaseSql`
            WITH joined AS (
              INSERT INTO gateway_nodes (node_id, expires_at, presence)
              VALUES (${nodeId}, now() + ${ttl}::interval, ${presenceKey})
              ON CONFLICT (node_id) DO UPDATE SET expires_at = excluded.expires_at, presence = excluded.presence
              RETURNING node_id
            )
            SELECT pg_notify(${channelsChangedChannel}, 'joined') FROM joined`)
        ),
      // a lease cut short by another node's judgement (to a moment ahead) renews until that moment: the
      // claims that would follow it check the row again
      renew: bounded(
        Effect.map(
          leaseSql`
            UPDATE gateway_nodes SET expires_at = now() + ${ttl}::interval
            WHERE node_id = ${nodeId} AND expires_at > now()
            RETURNING node_id`,
          (rows) => rows.length > 0
        )
      ),
      // a read like the reconciler's others, on the shared pool
      claimable: (limit, excluding) =>
        sql`
          SELECT c.id, c.run_epoch::int AS run_epoch, l.generation::int AS generation
          FROM channels c LEFT JOIN channel_leases l ON l.channel_id = c.id
            LEFT JOIN gateway_nodes n ON n.node_id = l.owner
          WHERE c.desired = 'running' AND c.status IN ${sql.in(runningStatuses)}
            AND (l.owner IS NULL OR l.owner = ${nodeId} OR n.node_id IS NULL
              OR n.expires_at < now() - ${graceInterval}::interval)
            AND c.id NOT IN (SELECT jsonb_array_elements_text(${json(excluding)}::jsonb))
          -- each node walks the channels in an order of its own, so nodes claiming at once rarely collide
          ORDER BY (l.owner = ${nodeId}) DESC NULLS LAST, md5(c.id || ${nodeId})
          LIMIT ${limit}`.pipe(
          decodeRows(CandidateRow),
          Effect.map((rows) =>
            rows.map((row) => ({ channelId: row.id, generation: row.generation, runEpoch: row.run_epoch }))
          )
        ),
      // the generation compared is the one the candidate was found under: whoever bumps it first has it
      claim: (channels) =>
        channels.length === 0
          ? Effect.succeed([])
          : leaseSql`
              WITH wanted AS (
                SELECT id, generation
                FROM jsonb_to_recordset(${json(channels.map((c) => ({ id: c.channelId, generation: c.generation })))}::jsonb)
                  AS w(id text, generation bigint)
              ),
              alive AS (SELECT 1 FROM gateway_nodes WHERE node_id = ${nodeId} AND expires_at > now()),
              previous AS (
                SELECT l.channel_id, l.owner FROM channel_leases l JOIN wanted w ON w.id = l.channel_id
              ),
              inserted AS (
                INSERT INTO channel_leases (channel_id, owner, generation)
                SELECT id, ${nodeId}, 1 FROM wanted WHERE generation IS NULL AND EXISTS (SELECT 1 FROM alive)
                ON CONFLICT (channel_id) DO NOTHING
                RETURNING channel_id, generation
              ),
              -- a lease row locked by a write in flight (or by a transaction a frozen process left open,
              -- until the server ends it) is skipped, not waited for: the others are taken now
              takeable AS (
                SELECT l.channel_id FROM channel_leases l JOIN wanted w ON w.id = l.channel_id
                WHERE l.generation = w.generation AND EXISTS (SELECT 1 FROM alive)
                  AND (l.owner IS NULL OR l.owner = ${nodeId} OR NOT EXISTS (
                    SELECT 1 FROM gateway_nodes n
                    WHERE n.node_id = l.owner AND n.expires_at >= now() - ${graceInterval}::interval))
                FOR UPDATE OF l SKIP LOCKED
              ),
              updated AS (
                UPDATE channel_leases l SET owner = ${nodeId}, generation = l.generation + 1
                FROM takeable t WHERE l.channel_id = t.channel_id
                RETURNING l.channel_id, l.generation
              )
              SELECT t.channel_id, t.generation::int AS generation, p.owner AS previous_owner
              FROM (SELECT * FROM inserted UNION ALL SELECT * FROM updated) t
                LEFT JOIN previous p ON p.channel_id = t.channel_id`.pipe(
              decodeRows(ClaimedRow),
              Effect.map((rows) =>
                rows.map((row) => ({
                  channelId: row.channel_id,
                  generation: row.generation,
                  takenFrom: row.previous_owner === nodeId ? null : row.previous_owner
                }))
              )
            ),
      release: (channelIds) =>
        channelIds.length === 0
          ? Effect.void
          : releaseOwned(
              leaseSql`channel_id IN (SELECT jsonb_array_elements_text(${json(channelIds)}::jsonb))`
            ),
      releaseAllBut: (running) =>
        releaseOwned(leaseSql`channel_id NOT IN (SELECT jsonb_array_elements_text(${json(running)}::jsonb))`),
      // the lease row is locked, not the node's: a takeover waits for the write, renewals do not
      check: (fence) =>
        Effect.flatMap(
          sql<{ held: boolean }>`
            SELECT true AS held FROM channel_leases l JOIN gateway_nodes n ON n.node_id = l.owner
            WHERE l.channel_id = ${fence.channelId} AND l.owner = ${nodeId}
              AND l.generation = ${fence.generation} AND n.expires_at > now()
            FOR SHARE OF l`.pipe(Effect.orDie),
          (rows) =>
            rows.length === 0 ? Effect.fail(new LeaseLost({ channelId: fence.channelId })) : Effect.void
        ),
      holding: (fence) => sql`
        SELECT 1 FROM channel_leases l JOIN gateway_nodes n ON n.node_id = l.owner
        WHERE l.channel_id = ${fence.channelId} AND l.owner = ${nodeId}
          AND l.generation = ${fence.generation} AND n.expires_at > now()
        FOR SHARE OF l`,
      holdingAll: (fences) => sql`
        SELECT l.channel_id, l.generation::int AS generation
        FROM channel_leases l JOIN gateway_nodes n ON n.node_id = l.owner
          JOIN json_to_recordset(${json(fences.map((fence) => ({ c: fence.channelId, g: fence.generation })))}::json)
            AS f(c text, g bigint) ON f.c = l.channel_id AND f.g = l.generation
        WHERE l.owner = ${nodeId} AND n.expires_at > now()
        -- in the order a release takes them (the other order could deadlock with it)
        ORDER BY l.channel_id
        FOR SHARE OF l`,
      liveNodes: bounded(
        Effect.map(
          leaseSql<{ n: number }>`SELECT count(*)::int AS n FROM gateway_nodes WHERE expires_at > now()`,
          (rows) => Math.max(1, rows[0]?.n ?? 1)
        )
      ),
      nextLapse: bounded(
        Effect.map(
          leaseSql<{ millis: number | null }>`
            SELECT (extract(epoch FROM min(expires_at) + ${graceInterval}::interval - now()) * 1000)::float8 AS millis
            FROM gateway_nodes
            WHERE node_id <> ${nodeId} AND expires_at + ${graceInterval}::interval > now()`,
          (rows) => {
            const millis = rows[0]?.millis
            return millis === null || millis === undefined ? undefined : Duration.millis(millis)
          }
        )
      ),
      leave: leaseSql`DELETE FROM gateway_nodes WHERE node_id = ${nodeId}`.pipe(
        Effect.timeout(timeout),
        Effect.asVoid,
        Effect.ignore
      )
    })
  })
)
