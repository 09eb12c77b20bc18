import { Effect, type Scope } from "effect"
import { newCustomer } from "../../server/test/support/admin.ts"
import { pairedChannel } from "../../server/test/support/simulator.ts"
import { baileysBenchGateway } from "./gateway.ts"
import { ensure, millisSince, waitUntil } from "./measure.ts"
import type { Report } from "./report.ts"

const withinMillis = 300_000

const phone = (n: number) => `4477009${String(n).padStart(5, "0")}`

/**
 * `count` phones paired with real Baileys against the simulator in one gateway process: how long
 * until every one is connected again after the simulator drops every connection at once.
 */
export const phones = (serverUrl: string, count: number): Effect.Effect<Report, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const { sim, gateway, sql } = yield* baileysBenchGateway(serverUrl)
    const connected = Effect.map(
      sql<{ n: number }>`SELECT count(*)::int AS n FROM channels WHERE status = 'connected'`,
      (rows) => rows[0]!.n
    ).pipe(Effect.orDie)

    const { client } = yield* newCustomer(gateway, { name: "Bench", plan: { max_channels: count } })
    const pairing = performance.now()
    yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) => pairedChannel(client, sim, phone(i)),
      { concurrency: 10 }
    )
    const pairMillis = millisSince(pairing)
    yield* ensure((yield* connected) === count, `all ${count} paired channels are connected`)

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

    return {
      benchmark: "phones",
      title: `${count} phones on real Baileys against the simulator, every connection dropped at once`,
      parameters: { phones: count, transport: "baileys", pairing_concurrency: 10 },
      figures: [
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
