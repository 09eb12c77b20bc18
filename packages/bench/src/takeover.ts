import { Duration, Effect, Option, type Scope } from "effect"
import {
  busiest,
  connectedChannels,
  countsOn,
  endOf,
  type Ending,
  movedElsewhere,
  openOn,
  peakPerSecond,
  ranOnceAtATime,
  recordingGateways,
  sigkill,
  waitSettled,
  withinMillis
} from "./gatewayProcesses.ts"
import type { RecordedConnection as Connection } from "../../server/test/support/recordingTransport.ts"
import { ensure, tenths } from "./measure.ts"
import type { Report } from "./report.ts"

/** What the SIGKILL and graceful takeovers aim for with the default lease settings (the figures). */
const targets = { killMillis: 8_000, gracefulMillis: 2_000 }

export interface TakeoverSize {
  readonly processes: number
  readonly channels: number
}

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

const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((x, y) => x - y)
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] ?? 0
}

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
    const gateways = yield* recordingGateways(serverUrl, processes)
    const { nodes, ttlMillis, graceMillis, start, connections, dbNow, endings } = gateways

    // 1. every process up; the channels created and connected through the first one's API
    const { ids } = yield* connectedChannels(gateways, channels)
    let live = nodes.map((node) => node.id)

    // 2. SIGKILL the process holding the most channels
    const victim = busiest(nodes, countsOn(yield* connections, endings))
    const { killedAt, lostChannels } = yield* sigkill(gateways, victim)
    live = live.filter((id) => id !== victim.id)
    const { rows: afterKill, millis: killMillis } = yield* movedElsewhere(
      gateways,
      `killed ${victim.id}`,
      victim.id,
      lostChannels,
      killedAt,
      ids,
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
    yield* waitSettled(gateways, `the restarted ${victim.id} gets its share back`, ids, live)
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
    const stopped = busiest(
      nodes.filter((node) => node.id !== victim.id),
      counts
    )
    const handed = openOn(afterRestart, endings, stopped.id)
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
      gateways,
      `stopped ${stopped.id}`,
      stopped.id,
      handed,
      stoppedAt,
      ids,
      live
    )
    const closedAt = afterStop
      .filter((row) => row.node_id === stopped.id && row.closed_at !== null && row.closed_at >= stoppedAt)
      .map((row) => row.closed_at!)

    // 5. never two connections of one channel at once; in the end exactly one each
    yield* ranOnceAtATime(gateways, ids)

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
