import { ConfigProvider, Duration, Effect, Option, type Scope } from "effect"
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
  createRecordingTable,
  recordedConnections,
  type RecordedConnection as Connection
} from "../../server/test/support/recordingTransport.ts"
import { ensure, ScenarioFailed, waitUntil } from "./measure.ts"
import { nodeEnvironments } from "./gateway.ts"
import type { Report } from "./report.ts"

/** Bounds on a scenario step: far beyond any target, so only a broken run reaches them. */
const withinMillis = 120_000

/** What the SIGKILL and graceful takeovers aim for with the default lease settings (the figures). */
const targets = { killMillis: 8_000, gracefulMillis: 2_000 }

export interface TakeoverSize {
  readonly processes: number
  readonly channels: number
}

/** A process life that ended without recording its closes: its connections opened before `at` end at `at`. */
interface Ending {
  readonly node: string
  readonly at: number
}

interface Node {
  readonly id: string
  readonly env: Record<string, string>
  process: GatewayProcess
}

const api = (env: Record<string, string>) => `http://127.0.0.1:${env.PORT}`

/** When a connection ended: its recorded close, else the end of the life it was opened in, else still open. */
const endOf = (row: Connection, endings: ReadonlyArray<Ending>) =>
  row.closed_at ??
  endings.filter((e) => e.node === row.node_id && row.opened_at <= e.at).sort((x, y) => x.at - y.at)[0]?.at ??
  null

/** The nodes each channel has an open connection on. */
const openBy = (rows: ReadonlyArray<Connection>, endings: ReadonlyArray<Ending>) => {
  const byChannel = new Map<string, Array<string>>()
  for (const row of rows) {
    if (endOf(row, endings) === null)
      byChannel.set(row.channel_id, [...(byChannel.get(row.channel_id) ?? []), row.node_id])
  }
  return byChannel
}

const countsOn = (rows: ReadonlyArray<Connection>, endings: ReadonlyArray<Ending>) => {
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

/** When as many of `rows` were open at once as `count`, first (null if never). */
const firstHeld = (rows: ReadonlyArray<Connection>, endings: ReadonlyArray<Ending>, count: number) => {
  const changes = rows
    .flatMap((row) => {
      const end = endOf(row, endings)
      return end === null
        ? [{ at: row.opened_at, by: 1 }]
        : [
            { at: row.opened_at, by: 1 },
            { at: end, by: -1 }
          ]
    })
    // at one instant, a close before an open
    .sort((x, y) => x.at - y.at || x.by - y.by)
  let open = 0
  for (const change of changes) {
    open += change.by
    if (open >= count) return change.at
  }
  return null
}

/** The most connections opened within any one second. */
const peakPerSecond = (openedAt: ReadonlyArray<number>) => {
  const times = [...openedAt].sort((x, y) => x - y)
  let peak = 0
  for (let first = 0, last = 0; last < times.length; last++) {
    while (times[last]! - times[first]! >= 1000) first++
    peak = Math.max(peak, last - first + 1)
  }
  return peak
}

const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((x, y) => x - y)
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] ?? 0
}

const tenths = (millis: number) => Math.round(millis * 10) / 10

/**
 * Real gateway OS processes on one database with the default lease settings, each connecting
 * through the recording transport: how long a SIGKILLed process's channels take to run elsewhere,
 * how a restarted process gets its share back (and how fast it connects), how long a graceful stop
 * takes to hand over; and, failing the run otherwise, that no channel ever ran twice at once.
 */
export const takeover = (
  serverUrl: string,
  { processes, channels }: TakeoverSize
): Effect.Effect<Report, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    yield* ensure(processes >= 2, "the takeover benchmark needs at least 2 processes")
    const database = yield* databaseOn(serverUrl)
    const sql = yield* sqlFor(database.url)
    const environments = yield* nodeEnvironments(database.url, processes)
    // the lease settings the processes run with: their environment (nothing inherited but PATH and
    // HOME) sets none, so these are the defaults
    const config = yield* loadConfig.pipe(
      Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnvRecord(environments[0]!.env))
    )
    const ttlMillis = Duration.toMillis(config.leaseTtl)
    const graceMillis = Duration.toMillis(leaseGrace(config.leaseTtl))

    const start = (env: Record<string, string>) =>
      Effect.tap(spawnGateway(env, recordingGatewayMain), (gateway) => waitReady(gateway, api(env)))
    // the first one migrates the database; the others start together once it has
    const first = yield* start(environments[0]!.env)
    yield* createRecordingTable(sql)
    const others = yield* Effect.forEach(environments.slice(1), ({ env }) => start(env), {
      concurrency: "unbounded"
    })
    const nodes: Array<Node> = environments.map(({ id, env }, i) => ({
      id,
      env,
      process: i === 0 ? first : others[i - 1]!
    }))

    const connections = recordedConnections(sql)
    const dbNow = Effect.map(
      sql<{ now: number }>`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now`,
      (rows) => rows[0]!.now
    ).pipe(Effect.orDie)
    const endings: Array<Ending> = []
    const waitSettled = (what: string, ids: ReadonlyArray<string>, live: ReadonlyArray<string>) =>
      waitUntil(
        what,
        Effect.map(connections, (rows) => settled(rows, endings, ids, live)),
        withinMillis
      )
    /**
     * Once `node` is gone: waits until every channel runs once on the live nodes, and says how long
     * after `since` each of `moved` opened elsewhere.
     */
    const movedElsewhere = (
      what: string,
      node: string,
      moved: ReadonlyArray<string>,
      since: number,
      live: ReadonlyArray<string>
    ) =>
      Effect.gen(function* () {
        yield* waitSettled(`every channel of the ${what} runs once elsewhere`, ids, live)
        const rows = yield* connections
        const moves = movedAfter(rows, moved, node, since)
        const millis = moves.filter((move): move is number => move !== null)
        yield* ensure(millis.length === moves.length, `a channel of the ${what} never opened elsewhere`)
        return { rows, millis }
      })

    // 1. every process up; the channels created and connected through the first one's API
    const entry = nodes[0]!.env
    const { client } = yield* newCustomer(
      {
        api: api(entry),
        admin: `http://${entry.WHATISUP_ADMIN_LISTEN}`,
        adminToken: entry.WHATISUP_ADMIN_TOKEN
      },
      { name: "Bench", plan: { max_channels: channels } }
    )
    const ids = yield* createChannels(client, channels)
    yield* connectAll(client, ids)
    let live = nodes.map((node) => node.id)
    yield* waitSettled(`each of ${channels} channels runs once, shared by ${processes} processes`, ids, live)

    // 2. SIGKILL the process holding the most channels
    const before = countsOn(yield* connections, endings)
    const victim = [...nodes].sort((x, y) => (before.get(y.id) ?? 0) - (before.get(x.id) ?? 0))[0]!
    const killedAt = yield* dbNow
    victim.process.child.kill("SIGKILL")
    yield* Effect.promise(() => victim.process.exited)
    // what it had open when it was killed ends there (at the latest when it was seen dead)
    const diedAt = yield* dbNow
    const lostChannels = [
      ...new Set(
        (yield* connections)
          .filter((row) => row.node_id === victim.id && endOf(row, endings) === null)
          .map((row) => row.channel_id)
      )
    ]
    endings.push({ node: victim.id, at: diedAt })
    live = live.filter((id) => id !== victim.id)
    const { rows: afterKill, millis: killMillis } = yield* movedElsewhere(
      `killed ${victim.id}`,
      victim.id,
      lostChannels,
      killedAt,
      live
    )
    const killDone = killedAt + Math.max(...killMillis)
    const killPeak = Math.max(
      ...live.map((node) =>
        peakPerSecond(
          afterKill
            .filter((row) => row.node_id === node && row.opened_at >= killedAt && row.opened_at <= killDone)
            .map((row) => row.opened_at)
        )
      )
    )

    // 3. the killed process starts again under its node id and gets its share back
    const restartedAt = yield* dbNow
    const restartClock = performance.now()
    victim.process = yield* start(victim.env)
    const readyMillis = performance.now() - restartClock
    const readyAt = yield* dbNow
    live = nodes.map((node) => node.id)
    yield* waitSettled(`the restarted ${victim.id} gets its share back`, ids, live)
    const afterRestart = yield* connections
    const joined = afterRestart.filter((row) => row.node_id === victim.id && row.opened_at >= restartedAt)
    const share = countsOn(afterRestart, endings).get(victim.id) ?? 0
    yield* ensure(share > 0, `the restarted ${victim.id} runs no channel`)
    // when it first held as many channels as it holds now
    const rebalancedAt = firstHeld(joined, endings, share)!
    const joinPeak = peakPerSecond(joined.map((row) => row.opened_at))
    // how long each channel it took ran nowhere: from the close on its previous node to its open here
    const gaps = joined.flatMap((row) => {
      const previous = afterRestart
        .filter((other) => other.channel_id === row.channel_id && other.opened_at < row.opened_at)
        .map((other) => endOf(other, endings))
        .filter((end): end is number => end !== null && end <= row.opened_at)
      return previous.length === 0 ? [] : [row.opened_at - Math.max(...previous)]
    })

    // 4. a graceful stop (SIGTERM) of the busiest of the others
    const counts = countsOn(afterRestart, endings)
    const stopped = nodes
      .filter((node) => node.id !== victim.id)
      .sort((x, y) => (counts.get(y.id) ?? 0) - (counts.get(x.id) ?? 0))[0]!
    const handed = afterRestart
      .filter((row) => row.node_id === stopped.id && endOf(row, endings) === null)
      .map((row) => row.channel_id)
    const stoppedAt = yield* dbNow
    stopped.process.child.kill("SIGTERM")
    const exit = yield* Effect.promise(() => stopped.process.exited).pipe(
      Effect.timeoutOption(Duration.millis(withinMillis))
    )
    yield* ensure(Option.isSome(exit), `${stopped.id} did not exit within ${withinMillis} ms of SIGTERM`)
    const exitCode = Option.getOrNull(exit)
    yield* ensure(exitCode === 0, `${stopped.id} exited with ${exitCode} after SIGTERM, not 0`)
    // whatever it did not record as closed counts as open until it had exited
    const exitedAt = yield* dbNow
    const unrecorded = (yield* connections).filter(
      (row) => row.node_id === stopped.id && endOf(row, endings) === null
    ).length
    endings.push({ node: stopped.id, at: exitedAt })
    live = live.filter((id) => id !== stopped.id)
    const { rows: afterStop, millis: stopMillis } = yield* movedElsewhere(
      `stopped ${stopped.id}`,
      stopped.id,
      handed,
      stoppedAt,
      live
    )
    const closedAt = afterStop
      .filter((row) => row.node_id === stopped.id && row.closed_at !== null && row.closed_at >= stoppedAt)
      .map((row) => row.closed_at!)

    // 5. never two connections of one channel at once; in the end exactly one each
    const final = yield* connections
    const twice = overlaps(final, endings)
    if (twice.length > 0) {
      return yield* new ScenarioFailed({
        message: `${twice.length} times a channel ran twice at once: ${twice.slice(0, 5).join("; ")}`
      })
    }
    const open = openBy(final, endings)
    const notOnce = ids.filter((id) => open.get(id)?.length !== 1)
    yield* ensure(
      notOnce.length === 0,
      `${notOnce.length} channels do not end with exactly one open connection`
    )

    const killMax = Math.max(...killMillis)
    const stopMax = Math.max(...stopMillis)
    return {
      benchmark: "takeover",
      title: `${channels} channels over ${processes} gateway processes (recording transport), default lease settings`,
      parameters: {
        processes,
        channels,
        lease_ttl_ms: ttlMillis,
        lease_ttl_source: "default (WHATISUP_LEASE_TTL unset)",
        takeover_grace_ms: graceMillis,
        killed: victim.id,
        stopped: stopped.id,
        unrecorded_closes_at_stop: unrecorded
      },
      figures: [
        {
          key: "kill_channels",
          label: "SIGKILL: channels the killed process ran",
          value: lostChannels.length,
          unit: "channels"
        },
        {
          key: "kill_moved_p50_ms",
          label: "SIGKILL until a channel runs elsewhere, p50",
          value: tenths(percentile(killMillis, 0.5)),
          unit: "ms"
        },
        {
          key: "kill_moved_max_ms",
          label: "SIGKILL until every channel runs elsewhere (max)",
          value: tenths(killMax),
          unit: "ms",
          target: { atMost: targets.killMillis }
        },
        {
          key: "kill_peak_connects_per_s",
          label: "SIGKILL: most connects in one second on a taking node",
          value: killPeak,
          unit: "/s"
        },
        {
          key: "restart_ready_ms",
          label: "restart: spawn until /readyz answers",
          value: tenths(readyMillis),
          unit: "ms"
        },
        {
          key: "rebalance_ms",
          label: "restart: spawn until it runs its share again",
          value: tenths(rebalancedAt - restartedAt),
          unit: "ms"
        },
        {
          key: "rebalance_after_ready_ms",
          label: "restart: /readyz until it runs its share again",
          value: tenths(rebalancedAt - readyAt),
          unit: "ms"
        },
        {
          key: "rebalance_channels",
          label: "restart: channels it took back",
          value: share,
          unit: "channels"
        },
        {
          key: "rebalance_peak_connects_per_s",
          label: "restart: most connects in one second on the joining node",
          value: joinPeak,
          unit: "/s"
        },
        {
          key: "rebalance_gap_p50_ms",
          label: "restart: a moved channel ran nowhere for, p50",
          value: tenths(percentile(gaps, 0.5)),
          unit: "ms"
        },
        {
          key: "rebalance_gap_max_ms",
          label: "restart: a moved channel ran nowhere for, max",
          value: tenths(gaps.length === 0 ? 0 : Math.max(...gaps)),
          unit: "ms"
        },
        {
          key: "stop_channels",
          label: "SIGTERM: channels the stopped process ran",
          value: handed.length,
          unit: "channels"
        },
        {
          key: "stop_closed_ms",
          label: "SIGTERM until it closed its last connection",
          value: tenths(closedAt.length === 0 ? 0 : Math.max(...closedAt) - stoppedAt),
          unit: "ms"
        },
        {
          key: "stop_exited_ms",
          label: "SIGTERM until the process exited",
          value: tenths(exitedAt - stoppedAt),
          unit: "ms"
        },
        {
          key: "stop_moved_p50_ms",
          label: "SIGTERM until a channel runs elsewhere, p50",
          value: tenths(percentile(stopMillis, 0.5)),
          unit: "ms"
        },
        {
          key: "stop_moved_max_ms",
          label: "SIGTERM until every channel runs elsewhere (max)",
          value: tenths(stopMax),
          unit: "ms",
          target: { atMost: targets.gracefulMillis }
        }
      ]
    } satisfies Report
  })
