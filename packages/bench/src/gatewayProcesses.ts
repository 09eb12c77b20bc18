import { type PlanPatch } from "@whatisup/domain"
import { ConfigProvider, Duration, Effect } from "effect"
import type { SqlClient } from "effect/sql"
import { loadConfig } from "../../server/src/config/config.ts"
import { leaseGrace } from "../../server/src/channels/leases.ts"
import { newCustomer } from "../../server/test/support/admin.ts"
import { connectAll, createChannels } from "../../server/test/support/api.ts"
import { databaseOn, sqlFor } from "../../server/test/support/database.ts"
import {
  type GatewayProcess,
  recordingGatewayMain,
  spawnGateway,
  waitReady
} from "../../server/test/support/process.ts"
import {
  createRecordingTables,
  recordedConnections,
  type RecordedConnection as Connection
} from "../../server/test/support/recordingTransport.ts"
import type { WaitTimedOut } from "../../server/test/support/waits.ts"
import { ensure, ScenarioFailed, waitUntil } from "./measure.ts"
import { nodeEnvironments } from "./gateway.ts"

/** Bounds on a scenario step: far beyond any target, so only a broken run reaches them. */
export const withinMillis = 120_000

/** A process life that ended without recording its closes: its connections opened before `at` end at `at`. */
export interface Ending {
  readonly node: string
  readonly at: number
}

export interface Node {
  readonly id: string
  readonly env: Record<string, string>
  process: GatewayProcess
}

export const apiOf = (env: Record<string, string>) => `http://127.0.0.1:${env.PORT}`

/** When a connection ended: its recorded close, else the end of the life it was opened in, else still open. */
export const endOf = (row: Connection, endings: ReadonlyArray<Ending>) =>
  row.closed_at ??
  endings.filter((e) => e.node === row.node_id && row.opened_at <= e.at).sort((x, y) => x.at - y.at)[0]?.at ??
  null

/** The nodes each channel has an open connection on. */
export const openBy = (rows: ReadonlyArray<Connection>, endings: ReadonlyArray<Ending>) => {
  const byChannel = new Map<string, Array<string>>()
  for (const row of rows) {
    if (endOf(row, endings) === null)
      byChannel.set(row.channel_id, [...(byChannel.get(row.channel_id) ?? []), row.node_id])
  }
  return byChannel
}

/** The channels `node` has open. */
export const openOn = (rows: ReadonlyArray<Connection>, endings: ReadonlyArray<Ending>, node: string) => [
  ...new Set(
    rows.filter((row) => row.node_id === node && endOf(row, endings) === null).map((row) => row.channel_id)
  )
]

export const countsOn = (rows: ReadonlyArray<Connection>, endings: ReadonlyArray<Ending>) => {
  const counts = new Map<string, number>()
  for (const nodes of openBy(rows, endings).values()) {
    for (const node of nodes) counts.set(node, (counts.get(node) ?? 0) + 1)
  }
  return counts
}

/**
 * Every channel runs exactly once, on a live node, and no live node holds more than the supervisor
 * lets it keep (its fair share plus one): nothing is left to move.
 */
const settled = (
  rows: ReadonlyArray<Connection>,
  endings: ReadonlyArray<Ending>,
  ids: ReadonlyArray<string>,
  live: ReadonlyArray<string>
) => {
  const open = openBy(rows, endings)
  const counts = countsOn(rows, endings)
  const most = Math.ceil(ids.length / live.length) + 1
  return (
    ids.every((id) => open.get(id)?.length === 1 && live.includes(open.get(id)![0]!)) &&
    live.every((node) => (counts.get(node) ?? 0) <= most)
  )
}

/** Two connections of one channel open at once, with the connection ending that a lost process's life implies. */
const overlaps = (rows: ReadonlyArray<Connection>, endings: ReadonlyArray<Ending>) => {
  const found: Array<string> = []
  const byChannel = new Map<string, Array<Connection>>()
  for (const row of rows) byChannel.set(row.channel_id, [...(byChannel.get(row.channel_id) ?? []), row])
  for (const [channel, connections] of byChannel) {
    const sorted = [...connections].sort((x, y) => x.opened_at - y.opened_at)
    let latest = { end: Number.NEGATIVE_INFINITY, node: "" }
    for (const row of sorted) {
      if (row.opened_at < latest.end) {
        found.push(`${channel}: opened on ${row.node_id} while open on ${latest.node}`)
      }
      const end = endOf(row, endings) ?? Number.POSITIVE_INFINITY
      if (end > latest.end) latest = { end, node: row.node_id }
    }
  }
  return found
}

/** For each channel, the first connection opened after `since` on a node other than `from`: how long after. */
const movedAfter = (
  rows: ReadonlyArray<Connection>,
  channels: ReadonlyArray<string>,
  from: string,
  since: number
) =>
  channels.map((channel) => {
    const opened = rows
      .filter((row) => row.channel_id === channel && row.node_id !== from && row.opened_at >= since)
      .map((row) => row.opened_at)
    return opened.length === 0 ? null : Math.min(...opened) - since
  })

/** The most connections opened within any one second. */
export const peakPerSecond = (openedAt: ReadonlyArray<number>) => {
  const times = [...openedAt].sort((x, y) => x - y)
  let peak = 0
  for (let first = 0, last = 0; last < times.length; last++) {
    while (times[last]! - times[first]! >= 1000) first++
    peak = Math.max(peak, last - first + 1)
  }
  return peak
}

/** The node that has the most channels open. */
export const busiest = (nodes: ReadonlyArray<Node>, counts: ReadonlyMap<string, number>) =>
  [...nodes].sort((x, y) => (counts.get(y.id) ?? 0) - (counts.get(x.id) ?? 0))[0]!

/** The database's clock now, in epoch milliseconds: the one clock every process's times are read on. */
export const databaseNow = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql<{ now: number }>`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now`,
    (rows) => rows[0]!.now
  ).pipe(Effect.orDie)

/**
 * `processes` real gateway OS processes on a fresh database with the default lease settings, each
 * connecting through the recording transport (every connection's node, open and close in a table,
 * every send in another), up and ready: what the multi-process benchmarks run on. Times are read on
 * the database clock, as the recording transport writes them. Connections of a process that died
 * without recording their closes end where `endings` says (`sigkill` adds its death there).
 */
export const recordingGateways = (serverUrl: string, processes: number) =>
  Effect.gen(function* () {
    const database = yield* databaseOn(serverUrl)
    const sql = yield* sqlFor(database.url)
    const environments = yield* nodeEnvironments(database.url, processes)
    // the lease settings the processes run with: their environment (nothing inherited but PATH and
    // HOME) sets none, so these are the defaults
    const config = yield* loadConfig.pipe(
      Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnvRecord(environments[0]!.env))
    )
    const start = (env: Record<string, string>) =>
      Effect.tap(spawnGateway(env, recordingGatewayMain), (gateway) => waitReady(gateway, apiOf(env)))
    // the first one migrates the database; the others start together once it has
    const first = yield* start(environments[0]!.env)
    yield* createRecordingTables(sql)
    const others = yield* Effect.forEach(environments.slice(1), ({ env }) => start(env), {
      concurrency: "unbounded"
    })
    return {
      sql,
      nodes: environments.map(({ id, env }, i) => ({ id, env, process: i === 0 ? first : others[i - 1]! })),
      ttlMillis: Duration.toMillis(config.leaseTtl),
      graceMillis: Duration.toMillis(leaseGrace(config.leaseTtl)),
      start,
      connections: recordedConnections(sql),
      dbNow: databaseNow(sql),
      endings: [] as Array<Ending>
    }
  })

export type RecordingGateways = Effect.Success<ReturnType<typeof recordingGateways>>

/** Waits until every channel of `ids` runs once on the `live` nodes and none holds more than its share plus one. */
export const waitSettled = (
  gateways: RecordingGateways,
  what: string,
  ids: ReadonlyArray<string>,
  live: ReadonlyArray<string>
): Effect.Effect<void, WaitTimedOut> =>
  waitUntil(
    what,
    Effect.map(gateways.connections, (rows) => settled(rows, gateways.endings, ids, live)),
    withinMillis
  )

/**
 * A customer (the plan given, `max_channels` raised to `channels`) creates `channels` channels and
 * connects them (QR) through the first process's API; answers once each runs exactly once, shared
 * by every process.
 */
export const connectedChannels = (
  gateways: RecordingGateways,
  channels: number,
  plan: typeof PlanPatch.Type = {}
) =>
  Effect.gen(function* () {
    const entry = gateways.nodes[0]!.env
    const customer = yield* newCustomer(
      {
        api: apiOf(entry),
        admin: `http://${entry.WHATISUP_ADMIN_LISTEN}`,
        adminToken: entry.WHATISUP_ADMIN_TOKEN
      },
      { name: "Bench", plan: { ...plan, max_channels: channels } }
    )
    const ids = yield* createChannels(customer.client, channels)
    yield* connectAll(customer.client, ids)
    yield* waitSettled(
      gateways,
      `each of ${channels} channels runs once, shared by ${gateways.nodes.length} processes`,
      ids,
      gateways.nodes.map((node) => node.id)
    )
    return { ...customer, ids }
  })

/**
 * SIGKILLs `node`: answers when it was killed, on the database clock, and the channels it had open.
 * Its connections end at the latest when it was seen dead.
 */
export const sigkill = (gateways: RecordingGateways, node: Node) =>
  Effect.gen(function* () {
    const killedAt = yield* gateways.dbNow
    node.process.child.kill("SIGKILL")
    yield* Effect.promise(() => node.process.exited)
    const diedAt = yield* gateways.dbNow
    const lostChannels = openOn(yield* gateways.connections, gateways.endings, node.id)
    gateways.endings.push({ node: node.id, at: diedAt })
    return { killedAt, lostChannels }
  })

/**
 * Once `node` is gone: waits until every channel of `ids` runs once on the live nodes, and says how
 * long after `since` each of `moved` opened elsewhere.
 */
export const movedElsewhere = (
  gateways: RecordingGateways,
  what: string,
  node: string,
  moved: ReadonlyArray<string>,
  since: number,
  ids: ReadonlyArray<string>,
  live: ReadonlyArray<string>
) =>
  Effect.gen(function* () {
    yield* waitSettled(gateways, `every channel of the ${what} runs once elsewhere`, ids, live)
    const rows = yield* gateways.connections
    const moves = movedAfter(rows, moved, node, since)
    const millis = moves.filter((move): move is number => move !== null)
    yield* ensure(millis.length === moves.length, `a channel of the ${what} never opened elsewhere`)
    return { rows, millis }
  })

/** Fails unless no two connections of one channel were ever open at once and each of `ids` ends with exactly one open. */
export const ranOnceAtATime = (gateways: RecordingGateways, ids: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const final = yield* gateways.connections
    const twice = overlaps(final, gateways.endings)
    if (twice.length > 0) {
      return yield* new ScenarioFailed({
        message: `${twice.length} times a channel ran twice at once: ${twice.slice(0, 5).join("; ")}`
      })
    }
    const open = openBy(final, gateways.endings)
    const notOnce = ids.filter((id) => open.get(id)?.length !== 1)
    yield* ensure(
      notOnce.length === 0,
      `${notOnce.length} channels do not end with exactly one open connection`
    )
  })
