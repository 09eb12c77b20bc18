import type { ChannelId } from "@whatisup/domain"
import { Duration, Effect, Schedule, type Scope } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { newCustomer } from "../../server/test/support/admin.ts"
import { databaseOn, sqlFor } from "../../server/test/support/database.ts"
import { gatewayEnvironment } from "../../server/test/support/gateway.ts"
import { gatewayNodeOptions } from "./gateway.ts"
import { spawnGateway, waitReady } from "../../server/test/support/process.ts"
import { deliverTo, pairedChannel, simulator } from "../../server/test/support/simulator.ts"
import { ensure, ScenarioFailed, waitUntil } from "./measure.ts"
import type { Report } from "./report.ts"
import { resultsDir } from "./report.ts"
import {
  backlogGrowth,
  type Growth,
  judgedMemoryMinutes,
  memoryGrowth,
  minimumPoints,
  type Point,
  shortestJudgeableSeconds,
  tooShortToJudgeMemory
} from "./soakCriteria.ts"
import { plot } from "./soakPlot.ts"

export interface SoakSize {
  readonly seconds: number
  readonly channels: number
  readonly sendsPerSecond: number
  readonly inboundPerSecond: number
  readonly sampleSeconds: number
}

const sampleSeconds = 10

/** The load of a soak run: a few channels, a moderate fixed rate each way, every event to one webhook. */
export const soakSize = (seconds: number): SoakSize => ({
  seconds,
  channels: 3,
  sendsPerSecond: 8,
  inboundPerSecond: 4,
  sampleSeconds
})

/** Any shorter run has too few samples in its second half for anything to be judged (40 s). */
const shortestSoakSeconds = shortestJudgeableSeconds(sampleSeconds)

/** `90s`, `10m`, `2h` (or a bare number of seconds) as seconds; undefined if it is none of these, or too short to judge anything. */
export const parseSoakDuration = (text: string | undefined) => {
  const match = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(text ?? "")
  if (match === null) return undefined
  const seconds = Number(match[1]) * { s: 1, m: 60, h: 3600 }[(match[2] ?? "s") as "s" | "m" | "h"]
  return seconds >= shortestSoakSeconds ? seconds : undefined
}

/**
 * `--soak <duration>` among the arguments: the soak alone, for that long (or what is wrong with the
 * duration); undefined without `--soak`.
 */
export const soakArguments = (
  args: ReadonlyArray<string>
):
  | { readonly error: string }
  | { readonly run: (serverUrl: string) => Effect.Effect<Report, unknown> }
  | undefined => {
  const at = args.indexOf("--soak")
  if (at < 0) return undefined
  const seconds = parseSoakDuration(args[at + 1])
  const others = args.filter((_, i) => i !== at && i !== at + 1)
  if (seconds === undefined || others.length > 0) {
    return {
      error:
        `usage: npm run bench -- --soak <duration of at least ${shortestSoakSeconds} s: 90s, 10m, 2h> (and nothing else: --quick, --set and names are not for the soak)\n` +
        `memory is judged on readings after a full GC, which takes a run of ${judgedMemoryMinutes} minutes or more in practice; a run too short to judge it fails`
    }
  }
  return { run: (serverUrl: string) => Effect.scoped(soak(serverUrl, soakSize(seconds))) }
}

/**
 * Memory grows when its fitted line over the second half of the run rises faster than this and by
 * more than this in all (see `memoryGrowth`). The heap after a full collection is the tight one (what
 * the gateway keeps); the resident set also carries buffers outside the heap, the allocator's
 * fragmentation and pages returned late, so its limit is looser.
 */
const heapLimit = { mbPerHour: 12, atLeastMb: 4 }
const rssLimit = { mbPerHour: 60, atLeastMb: 16 }
/** The backlog may rise by the work of this many seconds of the offered load across the second half. */
const backlogAllowanceSeconds = 10

/** Webhook events per send (sent, delivered, read: the simulated phone reads everything) and per inbound message. */
const eventsPerSend = 3

const drainMillis = 180_000

/** A customer's webhook receiver that counts (and keeps nothing else): the soak must not be what grows. */
const countingReceiver = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{ server: http.Server; url: string; requests: () => number; ids: () => number }>(
        (resolve) => {
          const ids = new Set<string>()
          let requests = 0
          const server = http.createServer((request, response) => {
            request.resume()
            request.on("end", () => {
              requests++
              ids.add(String(request.headers["webhook-id"]))
              response.writeHead(200, { "content-type": "text/plain" }).end("ok")
            })
          })
          server.listen(0, "127.0.0.1", () =>
            resolve({
              server,
              url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
              requests: () => requests,
              ids: () => ids.size
            })
          )
        }
      )
  ),
  ({ server }) =>
    Effect.promise(() => {
      server.closeAllConnections()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    })
)

/** The gateway's own gauges and counters as its admin /metrics serves them, by name (labels kept in the name). */
const scrape = (admin: string, token: string) =>
  Effect.promise(async () => {
    const response = await fetch(`${admin}/metrics`, { headers: { authorization: `Bearer ${token}` } })
    const text = await response.text()
    const values = new Map<string, number>()
    for (const line of text.split("\n")) {
      const match = /^whatisup_([a-z_]+(?:\{[^}]*\})?)\s+(\S+)/.exec(line)
      if (match !== null) values.set(match[1]!, Number(match[2]))
    }
    return values
  })

const duration = (seconds: number) =>
  seconds < 120 ? `${seconds} s` : seconds < 7200 ? `${Math.round(seconds / 60)} min` : `${seconds / 3600} h`

const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((x, y) => x - y)
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] ?? 0
}

const mb = (bytes: number | undefined) => Math.round(((bytes ?? 0) / 1024 / 1024) * 10) / 10
const ms = (seconds: number | undefined) => Math.round((seconds ?? 0) * 1000 * 10) / 10

/** One reading, every `sampleSeconds`: the gateway's process and what the load and the database show. */
export interface Sample {
  /** Seconds since the load started. */
  readonly at: number
  readonly rss_mb: number
  readonly heap_used_mb: number
  readonly heap_after_gc_mb: number
  readonly external_mb: number
  readonly full_gcs: number
  readonly cpu_percent: number
  readonly loop_delay_p50_ms: number
  readonly loop_delay_p99_ms: number
  readonly loop_delay_max_ms: number
  readonly sends_accepted: number
  readonly sends_failed: number
  readonly send_p99_ms: number
  readonly inbound_sent: number
  readonly inbound_failed: number
  readonly messages_sent: number
  readonly messages_read: number
  readonly messages_received: number
  readonly deliveries_succeeded: number
  readonly webhooks_received: number
  readonly outbox_queued: number
  readonly deliveries_pending: number
}

const samplesFile = path.join(resultsDir, "soak-samples.json")
const svgFile = path.join(resultsDir, "soak.svg")
const gatewayLogFile = path.join(resultsDir, "soak-gateway.log")

const verdictOf = (growth: Growth, unit: string) => ({
  per_hour: Math.round(growth.perHour * 10) / 10,
  over_window: Math.round(growth.overWindow * 10) / 10,
  window_seconds: Math.round(growth.windowSeconds),
  readings: growth.points,
  unit,
  grows: growth.grows
})

/**
 * One gateway OS process (real PostgreSQL, real Baileys against the simulator in this process) under a
 * steady load for `seconds`: sends through the API at a fixed rate, messages from the simulated phones,
 * every event posted to a local receiver. The gateway reports its own memory, CPU and event-loop delay
 * through its admin /metrics (so the load generator's work is not in its figures); they are sampled
 * every 10 s with the throughput and the backlogs, written to `results/soak-samples.json` as they come
 * and plotted in `results/soak.svg`. Fails when memory or a backlog keeps growing (see soakCriteria.ts).
 */
export const soak = (serverUrl: string, size: SoakSize): Effect.Effect<Report, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const sim = yield* simulator
    const receiver = yield* countingReceiver
    const database = yield* databaseOn(serverUrl)
    const sql = yield* sqlFor(database.url)
    const [server] = yield* sql<{ version: string }>`SELECT current_setting('server_version') AS version`
    const env = yield* gatewayEnvironment(database, {
      WHATISUP_WA_WS_URL: sim.url,
      WHATISUP_WA_MEDIA_HOST: sim.mediaHost,
      WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32",
      LOG_LEVEL: "warn",
      // e.g. `--heapsnapshot-signal=SIGUSR2` to see what grows (see the README)
      ...gatewayNodeOptions
    })
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => fs.rmSync(env.WHATISUP_DATA_DIR, { recursive: true, force: true }))
    )
    const api = `http://127.0.0.1:${env.PORT}`
    const admin = `http://${env.WHATISUP_ADMIN_LISTEN}`
    const gateway = yield* spawnGateway(env)
    // what the gateway logged (warnings and errors), kept whatever the outcome
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        fs.mkdirSync(resultsDir, { recursive: true })
        fs.writeFileSync(gatewayLogFile, gateway.output())
      })
    )
    yield* waitReady(gateway, api)

    const { client } = yield* newCustomer(
      { api, admin, adminToken: env.WHATISUP_ADMIN_TOKEN },
      { name: "Soak", plan: { max_channels: size.channels, messages_per_minute: 100_000 } }
    )
    // before the channels, so every event of the run, theirs included, has its delivery
    yield* client.webhooks.create({
      headers: {},
      payload: { url: receiver.url, description: "soak: every event" }
    })
    const phones = Array.from({ length: size.channels }, (_, i) => `4477019${String(i).padStart(5, "0")}`)
    const channels: ReadonlyArray<ChannelId> = yield* Effect.forEach(
      phones,
      (phone) => pairedChannel(client, sim, phone),
      { concurrency: size.channels }
    )
    const contacts = Array.from({ length: 5 }, (_, i) => `1555888${String(i).padStart(4, "0")}`)

    const counts = { accepted: 0, failed: 0, inbound: 0, inboundFailed: 0, inFlight: 0 }
    let sendMillis: Array<number> = []
    const allSendMillis: Array<number> = []
    const failures: Array<string> = []
    const send = (n: number) =>
      Effect.gen(function* () {
        const started = performance.now()
        yield* client.messages.send({
          params: { id: channels[n % channels.length]! },
          headers: {},
          payload: {
            to: `+${contacts[n % contacts.length]}`,
            type: "text",
            text: { body: `soak message ${n}` }
          }
        })
        const took = performance.now() - started
        sendMillis.push(took)
        allSendMillis.push(took)
        counts.accepted++
      }).pipe(
        Effect.catchCause((cause) =>
          Effect.sync(() => {
            counts.failed++
            if (failures.length < 5) failures.push(`send ${n}: ${String(cause)}`)
          })
        )
      )
    const inbound = (n: number) =>
      deliverTo(sim, phones[n % phones.length]!, {
        from: contacts[(n + 2) % contacts.length]!,
        message: { conversation: `soak inbound ${n}` }
      }).pipe(
        Effect.map((result) => {
          if (result.devices >= 1) return counts.inbound++
          counts.inboundFailed++
          if (failures.length < 5) failures.push(`inbound ${n}: no linked device online`)
        }),
        Effect.catchCause((cause) =>
          Effect.sync(() => {
            counts.inboundFailed++
            if (failures.length < 5) failures.push(`inbound ${n}: ${String(cause)}`)
          })
        )
      )

    /** `act(n)` at a fixed rate from `start` until `until` (performance.now() times), each in a fiber of its own. */
    const paced = (
      perSecond: number,
      start: number,
      until: number,
      act: (n: number) => Effect.Effect<unknown>
    ) =>
      Effect.gen(function* () {
        for (let n = 0; ; n++) {
          const due = start + (n * 1000) / perSecond
          if (due >= until) return n
          const wait = due - performance.now()
          if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
          counts.inFlight++
          yield* Effect.forkDetach(
            Effect.ensuring(
              act(n),
              Effect.sync(() => counts.inFlight--)
            )
          )
        }
      })

    const databaseCounts = Effect.map(
      sql<{
        queued: number
        sent: number
        read: number
        received: number
        pending: number
        succeeded: number
        events: number
      }>`
        SELECT
          (SELECT count(*) FROM messages WHERE direction = 'outbound' AND status = 'queued')::int AS queued,
          (SELECT count(*) FROM messages WHERE direction = 'outbound' AND status <> 'queued')::int AS sent,
          (SELECT count(*) FROM messages WHERE direction = 'outbound' AND status IN ('read', 'played'))::int AS read,
          (SELECT count(*) FROM messages WHERE direction = 'inbound')::int AS received,
          (SELECT count(*) FROM deliveries WHERE status = 'pending')::int AS pending,
          (SELECT count(*) FROM deliveries WHERE status = 'succeeded')::int AS succeeded,
          (SELECT count(*) FROM events)::int AS events`,
      (rows) => rows[0]!
    ).pipe(
      // the benchmark's own reading: a moment the shared server refuses a connection does not end the run
      Effect.retry({ schedule: Schedule.spaced("1 second"), times: 10 }),
      Effect.orDie
    )

    const samples: Array<Sample> = []
    const parameters = {
      seconds: size.seconds,
      channels: size.channels,
      sends_per_second: size.sendsPerSecond,
      inbound_per_second: size.inboundPerSecond,
      sample_seconds: size.sampleSeconds,
      transport: "baileys",
      gateway: "own OS process",
      cores: os.cpus().length,
      memory_gib: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
      node: process.version,
      postgresql: server!.version
    }
    const write = (verdicts: Record<string, unknown> = {}) =>
      Effect.sync(() => {
        fs.mkdirSync(resultsDir, { recursive: true })
        fs.writeFileSync(
          samplesFile,
          `${JSON.stringify({ benchmark: "soak", at: new Date().toISOString(), parameters, verdicts, samples }, null, 2)}\n`
        )
      })

    let previousCpu: { at: number; seconds: number } | undefined
    const sample = (start: number) =>
      Effect.gen(function* () {
        const metrics = yield* scrape(admin, env.WHATISUP_ADMIN_TOKEN)
        const db = yield* databaseCounts
        const at = (performance.now() - start) / 1000
        const cpu = metrics.get("process_cpu_seconds_total") ?? 0
        const cpuPercent =
          previousCpu === undefined ? 0 : ((cpu - previousCpu.seconds) / (at - previousCpu.at)) * 100
        previousCpu = { at, seconds: cpu }
        const window = sendMillis
        sendMillis = []
        samples.push({
          at: Math.round(at * 10) / 10,
          rss_mb: mb(metrics.get("process_resident_memory_bytes")),
          heap_used_mb: mb(metrics.get("process_heap_used_bytes")),
          heap_after_gc_mb: mb(metrics.get("process_heap_used_after_gc_bytes")),
          external_mb: mb(metrics.get("process_external_memory_bytes")),
          full_gcs: metrics.get("gc_full_collections_total") ?? 0,
          cpu_percent: Math.round(cpuPercent * 10) / 10,
          loop_delay_p50_ms: ms(metrics.get('event_loop_delay_seconds{stat="p50"}')),
          loop_delay_p99_ms: ms(metrics.get('event_loop_delay_seconds{stat="p99"}')),
          loop_delay_max_ms: ms(metrics.get('event_loop_delay_seconds{stat="max"}')),
          sends_accepted: counts.accepted,
          sends_failed: counts.failed,
          send_p99_ms: Math.round(percentile(window, 0.99) * 10) / 10,
          inbound_sent: counts.inbound,
          inbound_failed: counts.inboundFailed,
          messages_sent: db.sent,
          messages_read: db.read,
          messages_received: db.received,
          deliveries_succeeded: db.succeeded,
          webhooks_received: receiver.ids(),
          outbox_queued: db.queued,
          deliveries_pending: db.pending
        })
        const last = samples[samples.length - 1]!
        console.log(
          `  ${String(Math.round(at)).padStart(6)} s  rss ${last.rss_mb} MB  heap ${last.heap_used_mb} MB (after GC ${last.heap_after_gc_mb})  loop p99 ${last.loop_delay_p99_ms} ms  cpu ${last.cpu_percent} %  sent ${last.messages_sent}  received ${last.messages_received}  delivered ${last.deliveries_succeeded}  backlog ${last.outbox_queued}+${last.deliveries_pending}`
        )
        yield* write()
      })

    console.log(
      `soak: ${size.seconds} s, ${size.channels} channels, ${size.sendsPerSecond} sends/s, ${size.inboundPerSecond} inbound/s; gateway pid ${gateway.child.pid}; samples every ${size.sampleSeconds} s to ${path.relative(process.cwd(), samplesFile)}`
    )
    const start = performance.now()
    const until = start + size.seconds * 1000
    yield* Effect.forkChild(paced(size.sendsPerSecond, start, until, send))
    yield* Effect.forkChild(paced(size.inboundPerSecond, start, until, inbound))
    // a sample every 10 s of the run, the last at its end
    for (let k = 1; start + k * size.sampleSeconds * 1000 <= until; k++) {
      const wait = start + k * size.sampleSeconds * 1000 - performance.now()
      if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
      yield* sample(start)
      yield* ensure(gateway.child.exitCode === null, `the gateway exited:\n${gateway.output().slice(-4000)}`)
    }
    yield* Effect.sleep(Duration.millis(Math.max(0, until - performance.now())))
    yield* waitUntil(
      "the last sends and inbound messages are answered",
      Effect.sync(() => counts.inFlight === 0),
      60_000
    )
    const loadSeconds = (performance.now() - start) / 1000

    const series = (pick: (s: Sample) => number): Array<Point> =>
      samples.map((s) => ({ at: s.at, value: pick(s) }))
    // a send waits in the outbox, then its events in the deliveries; an inbound message's event too
    const offeredPerSecond = size.sendsPerSecond * (1 + eventsPerSend) + size.inboundPerSecond
    // Between full collections the heap (and with it the resident set) climbs by a hundred MB or more
    // and falls back: a sawtooth, whose slope over a window depends on where the window cuts it. Memory
    // is judged on the troughs: the samples whose window saw a full collection, the heap as it was just
    // after it and the resident set as it then was.
    const afterCollections = samples.filter((s, i) => s.full_gcs > (samples[i - 1]?.full_gcs ?? 0))
    const inBytes = (pick: (s: Sample) => number) =>
      afterCollections.map((s) => ({ at: s.at, value: pick(s) * 1024 * 1024 }))
    const heap = memoryGrowth(
      inBytes((s) => s.heap_after_gc_mb),
      size.seconds,
      heapLimit
    )
    const rss = memoryGrowth(
      inBytes((s) => s.rss_mb),
      size.seconds,
      rssLimit
    )
    const backlog = backlogGrowth(
      series((s) => s.outbox_queued + s.deliveries_pending),
      size.seconds,
      offeredPerSecond * backlogAllowanceSeconds
    )
    const verdicts = {
      heap_after_gc: verdictOf(heap, "MB"),
      rss: verdictOf(rss, "MB"),
      backlog: verdictOf(backlog, "items"),
      limits: {
        heap_after_gc: heapLimit,
        rss: rssLimit,
        backlog_items: offeredPerSecond * backlogAllowanceSeconds
      }
    }
    yield* write(verdicts)
    yield* Effect.sync(() => fs.writeFileSync(svgFile, soakSvg(size, samples)))
    console.log(
      `  samples in ${path.relative(process.cwd(), samplesFile)}, plot in ${path.relative(process.cwd(), svgFile)}`
    )
    for (const [name, growth, unit] of [
      ["heap after full GC", heap, "MB"],
      ["resident set", rss, "MB"],
      ["backlog", backlog, "items"]
    ] as const) {
      console.log(
        growth.points < minimumPoints
          ? `  ${name}: not judged, ${growth.points} fresh readings in the second half (at least ${minimumPoints} needed)`
          : `  ${name}: ${Math.round(growth.perHour * 10) / 10} ${unit}/h over the second half (${growth.points} readings, ${Math.round(growth.overWindow * 10) / 10} ${unit} across ${Math.round(growth.windowSeconds)} s): ${growth.grows ? "GROWS" : "steady"}`
      )
    }

    yield* ensure(
      failures.length === 0,
      `requests failed during the run (${counts.failed} sends, ${counts.inboundFailed} inbound):\n${failures.join("\n")}`
    )
    const growing = [
      heap.grows &&
        `the heap after GC grew ${verdictOf(heap, "MB").per_hour} MB/h (+${verdictOf(heap, "MB").over_window} MB over the last ${verdictOf(heap, "MB").window_seconds} s; limit ${heapLimit.mbPerHour} MB/h and ${heapLimit.atLeastMb} MB)`,
      rss.grows &&
        `the resident set grew ${verdictOf(rss, "MB").per_hour} MB/h (+${verdictOf(rss, "MB").over_window} MB over the last ${verdictOf(rss, "MB").window_seconds} s; limit ${rssLimit.mbPerHour} MB/h and ${rssLimit.atLeastMb} MB)`,
      backlog.grows &&
        `the backlog (queued sends + pending deliveries) grew by ${Math.round(backlog.overWindow)} items over the last ${Math.round(backlog.windowSeconds)} s (allowed ${offeredPerSecond * backlogAllowanceSeconds}): the gateway does not keep up`
    ].filter((reason): reason is string => typeof reason === "string")
    if (growing.length > 0) return yield* Effect.fail(new ScenarioFailed({ message: growing.join("; ") }))

    // the load stopped: everything accepted must be done, and every event delivered once at least
    yield* waitUntil(
      "every send is read, every inbound message stored, every delivery made",
      Effect.map(
        databaseCounts,
        (db) =>
          db.queued === 0 &&
          db.read === counts.accepted &&
          db.received === counts.inbound &&
          db.pending === 0 &&
          db.succeeded === db.events &&
          receiver.ids() === db.events
      ),
      drainMillis
    )
    const final = yield* databaseCounts

    gateway.child.kill("SIGTERM")
    const exitCode = yield* Effect.promise(() => gateway.exited)
    yield* ensure(
      exitCode === 0,
      `the gateway exited with ${exitCode} on SIGTERM:\n${gateway.output().slice(-4000)}`
    )
    // last, so that a short run has still checked everything else; the heap's readings are the resident set's
    const tooShort = tooShortToJudgeMemory(heap)
    if (tooShort !== undefined) return yield* Effect.fail(new ScenarioFailed({ message: tooShort }))

    const secondHalfSamples = samples.filter((s) => s.at >= size.seconds / 2)
    const median = (values: ReadonlyArray<number>) => percentile(values, 0.5)
    return {
      benchmark: "soak",
      title: `${duration(size.seconds)} of steady load on one gateway process (real Baileys, ${size.channels} channels)`,
      parameters,
      figures: [
        {
          key: "sends_per_s",
          label: "sends accepted",
          value: Math.round((counts.accepted / loadSeconds) * 10) / 10,
          unit: "/s"
        },
        {
          key: "inbound_per_s",
          label: "inbound messages stored",
          value: Math.round((final.received / loadSeconds) * 10) / 10,
          unit: "/s"
        },
        {
          key: "deliveries_per_s",
          label: "webhook deliveries",
          value: Math.round((final.succeeded / loadSeconds) * 10) / 10,
          unit: "/s"
        },
        {
          key: "send_p99_ms",
          label: "send answered, p99 over the run",
          value: Math.round(percentile(allSendMillis, 0.99) * 10) / 10,
          unit: "ms"
        },
        {
          key: "rss_first_mb",
          label: "resident set, first sample",
          value: samples[0]?.rss_mb ?? 0,
          unit: "MB"
        },
        {
          key: "rss_last_mb",
          label: "resident set, last sample",
          value: samples[samples.length - 1]?.rss_mb ?? 0,
          unit: "MB"
        },
        {
          key: "rss_max_mb",
          label: "resident set, highest",
          value: Math.max(...samples.map((s) => s.rss_mb)),
          unit: "MB"
        },
        {
          key: "rss_slope_mb_per_h",
          label: "resident set slope, second half",
          value: verdicts.rss.per_hour,
          unit: "MB/h"
        },
        {
          key: "heap_after_gc_first_mb",
          label: "heap after GC, first reading",
          value: afterCollections[0]?.heap_after_gc_mb ?? 0,
          unit: "MB"
        },
        {
          key: "heap_after_gc_last_mb",
          label: "heap after GC, last reading",
          value: afterCollections[afterCollections.length - 1]?.heap_after_gc_mb ?? 0,
          unit: "MB"
        },
        {
          key: "heap_after_gc_slope_mb_per_h",
          label: "heap after GC slope, second half",
          value: verdicts.heap_after_gc.per_hour,
          unit: "MB/h"
        },
        {
          key: "loop_delay_p99_median_ms",
          label: "event-loop delay p99, median of the samples",
          value: median(samples.map((s) => s.loop_delay_p99_ms)),
          unit: "ms"
        },
        {
          key: "loop_delay_max_ms",
          label: "event-loop delay, worst in any sample",
          value: Math.max(...samples.map((s) => s.loop_delay_max_ms)),
          unit: "ms"
        },
        {
          key: "cpu_percent_median",
          label: "gateway CPU, median of the samples",
          value: median(samples.slice(1).map((s) => s.cpu_percent)),
          unit: "% of a core"
        },
        {
          key: "backlog_max",
          label: "backlog (queued + pending deliveries), highest",
          value: Math.max(...samples.map((s) => s.outbox_queued + s.deliveries_pending)),
          unit: "items"
        },
        {
          key: "backlog_slope_per_h",
          label: "backlog slope, second half",
          value: verdicts.backlog.per_hour,
          unit: "items/h"
        },
        {
          key: "second_half_samples",
          label: "samples in the second half",
          value: secondHalfSamples.length,
          unit: ""
        }
      ]
    } satisfies Report
  })

/** Memory, event-loop delay, and throughput with the backlog, over the run. */
const soakSvg = (size: SoakSize, samples: ReadonlyArray<Sample>) => {
  const line = (name: string, colour: string, pick: (s: Sample) => number) => ({
    name,
    colour,
    points: samples.map((s) => [s.at, pick(s)] as const)
  })
  const perSecond = (pick: (s: Sample) => number) => (s: Sample, i: number) => {
    const before = samples[i - 1]
    return before === undefined ? pick(s) / s.at : (pick(s) - pick(before)) / (s.at - before.at)
  }
  const rate = (name: string, colour: string, pick: (s: Sample) => number) => ({
    name,
    colour,
    points: samples.map((s, i) => [s.at, perSecond(pick)(s, i)] as const)
  })
  return plot(
    `soak: ${size.seconds} s, ${size.channels} channels, ${size.sendsPerSecond} sends/s, ${size.inboundPerSecond} inbound/s (gateway process)`,
    size.seconds,
    [
      {
        title: "memory",
        unit: "MB",
        lines: [
          line("resident set", "#1f77b4", (s) => s.rss_mb),
          line("heap used", "#ff7f0e", (s) => s.heap_used_mb),
          {
            // absent until the first full collection
            ...line("heap after full GC", "#2ca02c", (s) => s.heap_after_gc_mb),
            points: samples.filter((s) => s.full_gcs > 0).map((s) => [s.at, s.heap_after_gc_mb] as const)
          },
          line("external", "#9467bd", (s) => s.external_mb)
        ]
      },
      {
        title: "event-loop delay per 10 s window",
        unit: "ms",
        lines: [
          line("p50", "#2ca02c", (s) => s.loop_delay_p50_ms),
          line("p99", "#ff7f0e", (s) => s.loop_delay_p99_ms),
          line("max", "#d62728", (s) => s.loop_delay_max_ms)
        ]
      },
      {
        title: "throughput and backlog",
        unit: "per s, items",
        lines: [
          rate("sends accepted /s", "#1f77b4", (s) => s.sends_accepted),
          rate("inbound stored /s", "#2ca02c", (s) => s.messages_received),
          rate("deliveries /s", "#ff7f0e", (s) => s.deliveries_succeeded),
          line("backlog (items)", "#d62728", (s) => s.outbox_queued + s.deliveries_pending)
        ]
      }
    ]
  )
}
