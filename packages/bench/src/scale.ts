import { Effect, type Scope } from "effect"
import * as path from "node:path"
import { newId } from "../../server/src/db/ids.ts"
import { newCustomer } from "../../server/test/support/admin.ts"
import { databaseOn, sqlFor } from "../../server/test/support/database.ts"
import { spawnGateway, waitReady } from "../../server/test/support/process.ts"
import { ensure, millisSince, tenths, waitUntil } from "./measure.ts"
import { nodeEnvironments } from "./gateway.ts"
import type { Report } from "./report.ts"

const scaleMain = path.resolve(import.meta.dirname, "scale-process.ts")

/** Bounds on a scenario step: far beyond any target, so only a broken run reaches them. */
const withinMillis = 600_000

/** What the issue asks of lease and reconcile work at 10,000 channels and 3 processes. */
const targetMillisPerNodeSecond = 20

export interface ScaleSize {
  readonly processes: number
  readonly channels: number
  /** How long each steady-state window of database time lasts. */
  readonly windowSeconds: number
}

/** How late PostgreSQL may report a backend's statistics (its idle flush interval), and a margin. */
const statisticsLag = "12 seconds"

/**
 * Real gateway OS processes on one database with the default lease settings, on a WhatsApp that
 * logs in at once (so the database work is the gateway's own): the database time they spend per
 * node and per second, idle with no channel (the baseline), then running `channels` channels on
 * all but one of them, then on all of them once the last one joined; and how long that join takes
 * to rebalance. The database time is PostgreSQL's own account (`pg_stat_database.active_time`:
 * time spent executing statements in the benchmark's database).
 */
export const scale = (
  serverUrl: string,
  { processes, channels, windowSeconds }: ScaleSize
): Effect.Effect<Report, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    yield* ensure(processes >= 2, "the scale benchmark needs at least 2 processes")
    const database = yield* databaseOn(serverUrl)
    const sql = yield* sqlFor(database.url)
    const environments = yield* nodeEnvironments(database.url, processes)
    const start = (env: Record<string, string>) =>
      Effect.tap(spawnGateway(env, scaleMain), (gateway) =>
        waitReady(gateway, `http://127.0.0.1:${env.PORT}`)
      )
    const [first, ...rest] = environments
    const joining = rest[rest.length - 1]!
    // the first one migrates the database; the others but the last start together once it has
    yield* start(first!.env)
    yield* Effect.forEach(rest.slice(0, -1), ({ env }) => start(env), { concurrency: "unbounded" })

    const activeMillis = Effect.map(
      sql<{ active: number }>`
        SELECT active_time::float8 AS active FROM pg_stat_database WHERE datname = current_database()`,
      (rows) => rows[0]!.active
    ).pipe(Effect.orDie)
    /**
     * PostgreSQL's time executing statements in this database over a window, per node and per second.
     * A backend reports its figures up to 10 s late, so the window opens once what came before is in.
     */
    const window = (nodes: number) =>
      Effect.gen(function* () {
        yield* Effect.sleep(statisticsLag)
        const before = yield* activeMillis
        const started = performance.now()
        yield* Effect.sleep(`${windowSeconds} seconds`)
        const seconds = (performance.now() - started) / 1000
        return tenths(((yield* activeMillis) - before) / seconds / nodes)
      })

    // 1. the baseline: the processes with nothing to run
    const idle = yield* window(processes - 1)

    // 2. the channels, written straight to the database (the benchmark measures ownership, not the API)
    const entry = first!.env
    const { customerId } = yield* newCustomer(
      {
        api: `http://127.0.0.1:${entry.PORT}`,
        admin: `http://${entry.WHATISUP_ADMIN_LISTEN}`,
        adminToken: entry.WHATISUP_ADMIN_TOKEN
      },
      { name: "Bench", plan: { max_channels: channels } }
    )
    const ids = Array.from({ length: channels }, () => newId.channel())
    for (let at = 0; at < ids.length; at += 1000) {
      yield* sql`
        INSERT INTO channels (id, customer_id, status, desired, connect_method, run_epoch)
        SELECT id, ${customerId}, 'connecting', 'running', 'qr', 1
        FROM jsonb_array_elements_text(${JSON.stringify(ids.slice(at, at + 1000))}::jsonb) AS id`
    }
    const connecting = performance.now()
    yield* sql`SELECT pg_notify('whatisup_channels_changed', 'bench')`
    const owners = Effect.map(
      sql<{ owner: string; n: number }>`
        SELECT l.owner, count(*)::int AS n FROM held_channel_leases l JOIN channels c ON c.id = l.channel_id
        WHERE l.expires_at > now() AND c.status = 'connected' GROUP BY l.owner`,
      (rows) => new Map(rows.map((row) => [row.owner, row.n]))
    ).pipe(Effect.orDie)
    const total = (counts: Map<string, number>) => [...counts.values()].reduce((sum, n) => sum + n, 0)
    yield* waitUntil(
      `all ${channels} channels connected on ${processes - 1} processes`,
      Effect.map(owners, (counts) => total(counts) === channels),
      withinMillis
    )
    const connectMillis = millisSince(connecting)
    const running = yield* window(processes - 1)

    // 3. the last process joins: how long until it holds its share and every channel runs once more
    const startedAt = performance.now()
    yield* start(joining.env)
    const readyMillis = millisSince(startedAt)
    const joinedAt = performance.now()
    const most = Math.ceil(channels / processes) + 1
    yield* waitUntil(
      `${joining.id} joins and the channels are shared by ${processes} processes`,
      Effect.map(
        owners,
        (counts) =>
          total(counts) === channels &&
          counts.size === processes &&
          [...counts.values()].every((n) => n <= most)
      ),
      withinMillis
    )
    const rebalanceMillis = millisSince(joinedAt)
    const shares = yield* owners
    const sharedBy = yield* window(processes)
    yield* ensure(total(yield* owners) === channels, "every channel still runs once after the last window")

    return {
      benchmark: "scale",
      title: `ownership at scale: ${channels} channels on ${processes} gateway processes, one PostgreSQL`,
      parameters: { processes, channels, window_seconds: windowSeconds },
      figures: [
        {
          key: "idle_db_ms_per_node_second",
          label: `database time per node per second, no channels (baseline, ${processes - 1} processes)`,
          value: idle,
          unit: "ms"
        },
        {
          key: "running_db_ms_per_node_second",
          label: `database time per node per second, ${channels} channels on ${processes - 1} processes`,
          value: running,
          unit: "ms"
        },
        {
          key: "shared_db_ms_per_node_second",
          label: `database time per node per second, ${channels} channels on ${processes} processes`,
          value: sharedBy,
          unit: "ms",
          target: { atMost: targetMillisPerNodeSecond }
        },
        {
          key: "connect_all_ms",
          label: `all ${channels} channels connected on ${processes - 1} processes`,
          value: connectMillis,
          unit: "ms"
        },
        {
          key: "join_ready_ms",
          label: `${joining.id} starts: until it answers /readyz`,
          value: readyMillis,
          unit: "ms"
        },
        {
          key: "rebalance_ms",
          label: `${joining.id} ready: until the channels are shared by ${processes}`,
          value: rebalanceMillis,
          unit: "ms"
        },
        {
          key: "joined_share",
          label: `channels ${joining.id} runs after the join`,
          value: shares.get(joining.id) ?? 0,
          unit: "channels"
        }
      ]
    }
  })
