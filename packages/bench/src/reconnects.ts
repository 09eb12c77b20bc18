import { Effect, type Scope } from "effect"
import * as v8 from "node:v8"
import { newCustomer } from "../../server/test/support/admin.ts"
import { pairedChannel } from "../../server/test/support/simulator.ts"
import { baileysBenchGateway } from "./gateway.ts"
import { ensure, millisSince, readMemory, waitUntil } from "./measure.ts"
import type { Report } from "./report.ts"
import { slopeOf } from "./soakCriteria.ts"

/** One reconnect, far beyond what it takes, so only a broken run reaches it. */
const withinMillis = 30_000

export interface ReconnectsSize {
  readonly reconnects: number
  /**
   * How much the objects' heap may grow per reconnect (its trend over the run) before the run
   * fails. Below a few hundred reconnects the heap still fills in steps of several hundred KiB
   * (caches, compiled code's data) that a trend cannot tell from a leak, so a short run can only
   * catch a gross one.
   */
  readonly boundBytesPerReconnect: number
}

/** How many heap readings the trend is drawn through: one after each tenth of the run. */
const readings = 10

const phone = "447700955501"

/**
 * The objects' heap after a forced GC: the old and new spaces. Compiled code, bytecode and the
 * large-object space are left out: they move by megabytes at once as the JIT and buffers come and
 * go, whatever the reconnects leave behind.
 */
const objectHeap = Effect.map(readMemory, (memory) => {
  const spaces = v8.getHeapSpaceStatistics()
  const used = (name: string) => spaces.find((space) => space.space_name === name)?.space_used_size ?? 0
  return { ...memory, objects: used("old_space") + used("new_space") }
})

const mib = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10

/**
 * One channel with real Baileys against the simulator, in one gateway process, restarted `count`
 * times as the API's restart does (a new run epoch, the supervisor woken; the API would pace it): the objects' heap after a forced GC, read every tenth of the run after a
 * warm-up tenth, and its trend per reconnect. A connection, its socket, or what it keeps per channel
 * that outlived its actor would show as a heap growing with every reconnect.
 */
export const reconnects = (
  serverUrl: string,
  { reconnects: count, boundBytesPerReconnect }: ReconnectsSize
): Effect.Effect<Report, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const { sim, gateway, sql } = yield* baileysBenchGateway(serverUrl)
    const { client } = yield* newCustomer(gateway, { name: "Bench", plan: { max_channels: 1 } })
    const id = yield* pairedChannel(client, sim, phone)
    const status = Effect.map(
      sql<{ status: string }>`SELECT status FROM channels WHERE id = ${id}`,
      (rows) => rows[0]?.status
    ).pipe(Effect.orDie)
    const liveConnection = () => {
      const live = sim.connectionsOf(phone)
      return live.length === 1 ? live[0]!.id : undefined
    }

    let overlaps = 0
    let restartMillis = 0
    const restart = Effect.gen(function* () {
      const before = liveConnection()
      yield* ensure(before !== undefined, `${phone} has one live connection before the restart`)
      const asked = performance.now()
      // what POST .../restart does, without the API's pacing (6 a minute per channel): a new run
      // epoch, and the supervisor woken, which replaces the actor
      yield* sql`UPDATE channels SET run_epoch = run_epoch + 1 WHERE id = ${id}`
      yield* sql`SELECT pg_notify('whatisup_channels_changed', ${id})`
      yield* waitUntil(
        "the channel is connected again, on a new connection",
        Effect.map(status, (now) => {
          const live = liveConnection()
          return now === "connected" && live !== undefined && live !== before
        }),
        withinMillis
      )
      restartMillis += performance.now() - asked
      overlaps += sim.overlaps(phone).length
      // the simulator runs in this process too: its record of closed connections is not the gateway's
      sim.clearHistory(phone)
    })

    // a reading after the first tenth (the warm-up), then after each further tenth
    const step = Math.max(1, Math.floor(count / readings))
    const started = performance.now()
    const taken: Array<{ readonly after: number; readonly heap: Effect.Success<typeof objectHeap> }> = []
    for (let done = 1; done <= count; done++) {
      yield* restart
      if (done % step === 0 || done === count) taken.push({ after: done, heap: yield* objectHeap })
    }
    const totalMillis = millisSince(started)
    const first = taken[0]!
    const last = taken.at(-1)!
    const points = taken.map(({ after, heap }) => ({ at: after, value: heap.objects }))

    yield* ensure(overlaps === 0, `${overlaps} times two connections of ${phone} were live at once`)
    const perReconnect = Math.round(slopeOf(points))
    yield* ensure(
      perReconnect <= boundBytesPerReconnect,
      `the objects' heap grew by ${perReconnect} bytes per reconnect (${points
        .map(({ at, value }) => `${at}: ${mib(value)} MiB`)
        .join(", ")}), beyond ${boundBytesPerReconnect}`
    )

    const measured = last.after - first.after
    return {
      benchmark: "reconnects",
      title: `one channel on real Baileys against the simulator, restarted ${count.toLocaleString("en-US")} times`,
      parameters: {
        reconnects: count,
        bound_bytes_per_reconnect: boundBytesPerReconnect,
        heap_readings: points.length,
        transport: "baileys",
        gc_before_reading: last.heap.collected,
        objects_kib_by_reconnects: points
          .map(({ at, value }) => `${at}:${Math.round(value / 1024)}`)
          .join(" ")
      },
      figures: [
        {
          key: "objects_at_warm_up_mib",
          label: `objects' heap after ${first.after} reconnects`,
          value: mib(first.heap.objects),
          unit: "MiB"
        },
        {
          key: "objects_at_end_mib",
          label: `objects' heap after ${count} reconnects`,
          value: mib(last.heap.objects),
          unit: "MiB"
        },
        {
          key: "objects_per_reconnect_bytes",
          label: "objects' heap growth per reconnect (trend)",
          value: perReconnect,
          unit: "bytes",
          target: { atMost: boundBytesPerReconnect }
        },
        {
          key: "heap_per_reconnect_bytes",
          label: "whole heap growth per reconnect (end - warm-up)",
          value: Math.round((last.heap.heapUsed - first.heap.heapUsed) / measured),
          unit: "bytes"
        },
        {
          key: "rss_per_reconnect_bytes",
          label: "RSS growth per reconnect (end - warm-up)",
          value: Math.round((last.heap.rss - first.heap.rss) / measured),
          unit: "bytes"
        },
        {
          key: "reconnect_ms",
          label: "restart until connected again (mean)",
          value: Math.round((restartMillis / count) * 10) / 10,
          unit: "ms"
        },
        { key: "total_ms", label: "the whole run (reconnects and readings)", value: totalMillis, unit: "ms" }
      ]
    } satisfies Report
  })
