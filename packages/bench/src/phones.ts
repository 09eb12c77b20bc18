import type { Simulator } from "@whatisup/wa-simulator"
import { Effect, type Scope } from "effect"
import { newCustomer } from "../../server/test/support/admin.ts"
import { pairedChannel, simulator } from "../../server/test/support/simulator.ts"
import type { BaileysPackage } from "./bare-baileys-process.ts"
import { bareBaileysProcess } from "./bareBaileys.ts"
import { forkedGateway } from "./gateway.ts"
import type { ProcessMemory } from "./ipcProcess.ts"
import { ensure, judged, millisSince, type ScenarioFailed, waitUntil } from "./measure.ts"
import type { Report } from "./report.ts"

const withinMillis = 300_000

const pad = (n: number) => String(n).padStart(5, "0")
const phone = (n: number) => `4477009${pad(n)}`

const pairingConcurrency = 10

/** What the issue asks: a gateway with this many channels connected stays under 1 GiB of RSS. */
const rssTargetMib = 1024

/** What the issue asks: a connected channel costs the gateway at most the heap of a bare Baileys socket as published. */
const heapRatioTarget = 1

const kib = (bytes: number) => Math.round((bytes / 1024) * 10) / 10
const mib = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10

/** What a process's memory grew by, field by field. */
type Growth = Record<"heapUsed" | "heapTotal" | "external" | "rss", number>

const growth = (before: ProcessMemory, after: ProcessMemory): Growth => ({
  heapUsed: after.heapUsed - before.heapUsed,
  heapTotal: after.heapTotal - before.heapTotal,
  external: after.external - before.external,
  rss: after.rss - before.rss
})

/** What each of `count` sockets added, from what their processes grew by. */
const perSocket = (grown: Growth, count: number) => ({
  heap: grown.heapUsed / count,
  heapTotal: grown.heapTotal / count,
  external: grown.external / count,
  rss: grown.rss / count
})

/**
 * Baileys as published opens an AsyncLocalStorage for each socket's key transactions, and Node 22
 * visits every enabled one on each async operation of the process (the gateway's patch shares one
 * among all sockets): 200 published sockets in one process kept it busy pairing for minutes and grew
 * its RSS by 13 MB a socket (22:23, against 1.4 MB as patched). Its sockets are spread over processes
 * of at most this many, which mainly favours the baseline (each process pays its own first socket's
 * one-off costs too, a few KiB a socket at 1,000); as patched, they share one process, as the
 * gateway's channels do.
 */
const publishedPerProcess = 200

/**
 * `count` bare sockets on `baileys`, in plain processes of at most `perProcess` each, one process
 * after the other: each socket paired to a phone of `phoneOf` and checked connected once, and what
 * the processes grew by with them, summed. Each process ends before the next starts.
 */
const bareSockets = (
  sim: Simulator,
  baileys: BaileysPackage,
  count: number,
  perProcess: number,
  phoneOf: (n: number) => string
): Effect.Effect<Growth, ScenarioFailed> =>
  Effect.gen(function* () {
    const name = baileys === "baileys-published" ? "published" : "patched"
    const total: Growth = { heapUsed: 0, heapTotal: 0, external: 0, rss: 0 }
    for (let first = 0; first < count; first += perProcess) {
      const phones = Array.from({ length: Math.min(perProcess, count - first) }, (_, i) => phoneOf(first + i))
      const grown = yield* Effect.scoped(
        Effect.gen(function* () {
          const bare = yield* bareBaileysProcess(sim, baileys)
          const before = yield* bare.memory
          if (first === 0) yield* bare.snapshot(`phones-bare-${name}-before`)
          yield* Effect.forEach(phones, (phoneNumber) => bare.pair(phoneNumber), {
            concurrency: pairingConcurrency,
            discard: true
          })
          for (const phoneNumber of phones) {
            const connections = sim.connectionsOf(phoneNumber).length
            yield* ensure(
              connections === 1,
              `${phoneNumber} has ${connections} connections to the simulator, not 1`
            )
          }
          const withSockets = yield* bare.memory
          if (first === 0) yield* bare.snapshot(`phones-bare-${name}-with`)
          return growth(before, withSockets)
        })
      )
      for (const field of Object.keys(total) as Array<keyof Growth>) total[field] += grown[field]
    }
    return total
  })

export interface PhonesSize {
  /** Phones paired, each a channel of the gateway (and as many bare sockets for each baseline). */
  readonly channels: number
}

/**
 * `count` phones paired with real Baileys against the simulator (in this process) by one gateway OS
 * process: what each connected channel costs it in memory, and how long until every one is connected
 * again after the simulator drops every connection at once. Beside it, the baselines: as many bare
 * Baileys sockets (no gateway, no Effect, Signal keys in files) paired to the same simulator by
 * plain processes of their own, on Baileys as published (the target's baseline: what a program using
 * Baileys itself pays a socket), then on Baileys as the gateway patched it (what the gateway adds
 * beyond its Baileys). Every process reads its memory the same way.
 */
export const phones = (
  serverUrl: string,
  { channels: count }: PhonesSize,
  /** The name its figures go under, and its JSON file's (`phones-1000` keeps its own). */
  benchmark = "phones"
): Effect.Effect<Report, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const sim = yield* simulator
    const {
      gateway,
      process: gatewayProcess,
      sql
    } = yield* forkedGateway(serverUrl, {
      WHATISUP_WA_WS_URL: sim.url
    })
    const connected = Effect.map(
      sql<{ n: number }>`SELECT count(*)::int AS n FROM channels WHERE status = 'connected'`,
      (rows) => rows[0]!.n
    ).pipe(Effect.orDie)

    const { client } = yield* newCustomer(gateway, { name: "Bench", plan: { max_channels: count } })
    const beforeChannels = yield* gatewayProcess.memory
    yield* gatewayProcess.snapshot("phones-gateway-before")
    const pairing = performance.now()
    yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) => pairedChannel(client, sim, phone(i)),
      { concurrency: pairingConcurrency }
    )
    const pairMillis = millisSince(pairing)
    yield* ensure((yield* connected) === count, `all ${count} paired channels are connected`)
    const withChannels = yield* gatewayProcess.memory
    yield* gatewayProcess.snapshot("phones-gateway-with")

    // event ids are monotonic within this process: whatever comes after the drop sorts after this one
    const [mark] = yield* sql<{ id: string }>`SELECT coalesce(max(id), '') AS id FROM events`
    const afterDrop = (type: string) =>
      Effect.map(
        sql<{ channels: number; events: number }>`
          SELECT count(DISTINCT channel_id)::int AS channels, count(*)::int AS events
          FROM events WHERE type = ${type} AND id > ${mark!.id}`,
        (rows) => rows[0]!
      ).pipe(Effect.orDie)

    const dropping = performance.now()
    let dropped = 0
    for (let i = 0; i < count; i++) dropped += sim.inject(phone(i), { kind: "drop" })
    yield* ensure(dropped === count, `the simulator dropped ${dropped} connections, not ${count}`)
    yield* waitUntil(
      `all ${count} channels connect again after the drop`,
      Effect.gen(function* () {
        const reconnected = yield* afterDrop("channel.connected")
        return reconnected.channels === count && (yield* connected) === count
      }),
      withinMillis
    )
    const reconnectMillis = millisSince(dropping)

    const disconnects = yield* sql<{ n: number }>`
      SELECT count(*)::int AS n FROM events
      WHERE type = 'channel.disconnected' AND (data ->> 'code')::int = 428 AND id > ${mark!.id}`
    yield* ensure(
      disconnects[0]!.n === count,
      `${disconnects[0]!.n} channels, not ${count}, reported the drop (428)`
    )
    const reconnects = yield* afterDrop("channel.connected")
    yield* ensure(reconnects.events === count, `${reconnects.events} reconnects, not ${count}`)
    for (let i = 0; i < count; i++) {
      const connections = sim.connectionsOf(phone(i)).length
      yield* ensure(connections === 1, `${phone(i)} has ${connections} connections to the simulator, not 1`)
    }

    // then the baselines, once the gateway's figures are taken (while they pair, the simulator in this
    // process is busy for minutes, and may answer the gateway's keepalives too late): as many bare
    // Baileys sockets in plain processes of their own, paired to phones of their own in the same
    // simulator, read the same way (after a full collection); on Baileys as published (the target's),
    // then on Baileys as the gateway patched it
    const published = yield* bareSockets(
      sim,
      "baileys-published",
      count,
      publishedPerProcess,
      (n) => `4477008${pad(n)}`
    )
    const patched = yield* bareSockets(
      sim,
      "@whiskeysockets/baileys",
      count,
      count,
      (n) => `4477007${pad(n)}`
    )

    const perChannel = perSocket(growth(beforeChannels, withChannels), count)
    const perBare = perSocket(published, count)
    const perPatched = perSocket(patched, count)

    return {
      benchmark,
      title: `${count} phones on real Baileys against the simulator: memory per channel vs bare Baileys, every connection dropped at once`,
      parameters: {
        channels: count,
        transport: "baileys",
        pairing_concurrency: pairingConcurrency,
        gc_before_reading: withChannels.collected,
        gateway: "a process of its own",
        bare_baileys: `plain processes of their own, one after the other: Baileys 7.0.0-rc14 as published (baileys-published), at most ${publishedPerProcess} sockets a process, then as the gateway patched it, all in one`,
        simulator: "the benchmark's process"
      },
      figures: [
        {
          key: "heap_per_channel_kib",
          label: "heap per connected channel",
          value: kib(perChannel.heap),
          unit: "KiB"
        },
        {
          key: "rss_per_channel_kib",
          label: "RSS per connected channel",
          value: kib(perChannel.rss),
          unit: "KiB"
        },
        {
          key: "heap_per_bare_socket_kib",
          label: "bare Baileys as published: heap per socket",
          value: kib(perBare.heap),
          unit: "KiB"
        },
        {
          key: "rss_per_bare_socket_kib",
          label: "bare Baileys as published: RSS per socket",
          value: kib(perBare.rss),
          unit: "KiB"
        },
        {
          key: "heap_per_patched_bare_socket_kib",
          label: "bare Baileys as the gateway patched it: heap per socket",
          value: kib(perPatched.heap),
          unit: "KiB"
        },
        {
          key: "rss_per_patched_bare_socket_kib",
          label: "bare Baileys as the gateway patched it: RSS per socket",
          value: kib(perPatched.rss),
          unit: "KiB"
        },
        {
          key: "heap_total_per_channel_kib",
          label: "heap held from the system per channel, used or not",
          value: kib(perChannel.heapTotal),
          unit: "KiB"
        },
        {
          key: "heap_total_per_bare_socket_kib",
          label: "bare Baileys as published: heap held per socket, used or not",
          value: kib(perBare.heapTotal),
          unit: "KiB"
        },
        {
          key: "external_per_channel_kib",
          label: "external memory (Buffers) per channel",
          value: kib(perChannel.external),
          unit: "KiB"
        },
        {
          key: "external_per_bare_socket_kib",
          label: "bare Baileys as published: external memory per socket",
          value: kib(perBare.external),
          unit: "KiB"
        },
        {
          key: "ratio_heap",
          label: "heap per channel / per bare socket as published",
          value: judged(perChannel.heap / perBare.heap),
          unit: "",
          target: { atMost: heapRatioTarget }
        },
        {
          key: "ratio_rss",
          label: "RSS per channel / per bare socket as published",
          value: judged(perChannel.rss / perBare.rss),
          unit: ""
        },
        {
          key: "ratio_heap_patched",
          label: "heap per channel / per bare socket as patched (the gateway beyond its Baileys)",
          value: judged(perChannel.heap / perPatched.heap),
          unit: ""
        },
        {
          key: "ratio_rss_patched",
          label: "RSS per channel / per bare socket as patched",
          value: judged(perChannel.rss / perPatched.rss),
          unit: ""
        },
        {
          key: "rss_with_channels_mib",
          label: `the gateway process's RSS with ${count} channels connected`,
          value: mib(withChannels.rss),
          unit: "MiB",
          target: { atMost: rssTargetMib }
        },
        { key: "pair_all_ms", label: "pair every phone (QR scan)", value: pairMillis, unit: "ms" },
        {
          key: "reconnect_all_ms",
          label: "drop until every channel is connected again",
          value: reconnectMillis,
          unit: "ms"
        }
      ]
    } satisfies Report
  })
