import { Effect, type Scope } from "effect"
import { newCustomer } from "../../server/test/support/admin.ts"
import { pairedChannel, simulator } from "../../server/test/support/simulator.ts"
import { bareBaileysProcess } from "./bareBaileys.ts"
import { forkedGateway } from "./gateway.ts"
import { ensure, judged, millisSince, waitUntil } from "./measure.ts"
import type { Report } from "./report.ts"

const withinMillis = 300_000

const phone = (n: number) => `4477009${String(n).padStart(5, "0")}`
const barePhone = (n: number) => `4477008${String(n).padStart(5, "0")}`

const pairingConcurrency = 10

/** What the issue asks: a gateway with this many channels connected stays under 1 GiB of RSS. */
const rssTargetMib = 1024

const kib = (bytes: number) => Math.round((bytes / 1024) * 10) / 10
const mib = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10

/**
 * `count` phones paired with real Baileys against the simulator (in this process) by one gateway OS
 * process: what each connected channel costs it in memory, and how long until every one is connected
 * again after the simulator drops every connection at once. Beside it, the baseline: as many bare
 * Baileys sockets (no gateway, no Effect, logins in memory) paired to the same simulator by a plain
 * process of their own: what a bare socket costs. Both processes read their memory the same way.
 */
export const phones = (serverUrl: string, count: number): Effect.Effect<Report, unknown, Scope.Scope> =>
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

    // the baseline: as many bare Baileys sockets in a plain process of their own, paired to phones of
    // their own in the same simulator, read the same way (after a full collection)
    const bare = yield* bareBaileysProcess(sim)
    const beforeBare = yield* bare.memory
    yield* bare.snapshot("phones-bare-before")
    yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) => bare.pair(barePhone(i)),
      { concurrency: pairingConcurrency, discard: true }
    )
    for (let i = 0; i < count; i++) {
      const connections = sim.connectionsOf(barePhone(i)).length
      yield* ensure(
        connections === 1,
        `${barePhone(i)} has ${connections} connections to the simulator, not 1`
      )
    }
    const withBare = yield* bare.memory
    yield* bare.snapshot("phones-bare-with")

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

    const perChannel = {
      heap: (withChannels.heapUsed - beforeChannels.heapUsed) / count,
      heapTotal: (withChannels.heapTotal - beforeChannels.heapTotal) / count,
      external: (withChannels.external - beforeChannels.external) / count,
      rss: (withChannels.rss - beforeChannels.rss) / count
    }
    const perBare = {
      heap: (withBare.heapUsed - beforeBare.heapUsed) / count,
      heapTotal: (withBare.heapTotal - beforeBare.heapTotal) / count,
      external: (withBare.external - beforeBare.external) / count,
      rss: (withBare.rss - beforeBare.rss) / count
    }

    return {
      benchmark: "phones",
      title: `${count} phones on real Baileys against the simulator: memory per channel vs bare Baileys, every connection dropped at once`,
      parameters: {
        phones: count,
        transport: "baileys",
        pairing_concurrency: pairingConcurrency,
        gc_before_reading: withChannels.collected,
        gateway: "a process of its own",
        bare_baileys: "a plain process of its own",
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
          label: "bare Baileys: heap per socket",
          value: kib(perBare.heap),
          unit: "KiB"
        },
        {
          key: "rss_per_bare_socket_kib",
          label: "bare Baileys: RSS per socket",
          value: kib(perBare.rss),
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
          label: "bare Baileys: heap held per socket, used or not",
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
          label: "bare Baileys: external memory per socket",
          value: kib(perBare.external),
          unit: "KiB"
        },
        {
          key: "ratio_heap",
          label: "heap per channel / per bare socket",
          value: judged(perChannel.heap / perBare.heap),
          unit: ""
        },
        {
          key: "ratio_rss",
          label: "RSS per channel / per bare socket",
          value: judged(perChannel.rss / perBare.rss),
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
