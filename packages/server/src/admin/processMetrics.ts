import { Effect, Layer, Metric, Schedule } from "effect"
import { constants, monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks"
import * as v8 from "node:v8"

/** How often the gauges are refreshed; the event-loop figures describe the window that just ended. */
export const processSampleMillis = 10_000

const loopResolutionMillis = 10

const residentMemory = Metric.gauge("process_resident_memory_bytes", {
  description: "Resident set size of the gateway process"
})
const heapUsed = Metric.gauge("process_heap_used_bytes", {
  description: "V8 heap in use at the last sample, garbage included"
})
const heapAfterGc = Metric.gauge("process_heap_used_after_gc_bytes", {
  description:
    "V8 heap in use just after the latest full (mark-compact) garbage collection: what is really kept"
})
const externalMemory = Metric.gauge("process_external_memory_bytes", {
  description: "Memory held outside the V8 heap by JavaScript objects (Buffers, ArrayBuffers)"
})
const cpuSeconds = Metric.counter("process_cpu_seconds_total", {
  description: "CPU time (user and system) the gateway process has used"
})
const loopDelay = Metric.gauge("event_loop_delay_seconds", {
  description:
    "Event-loop delay over the last sample window (10 s), by statistic (p50, p99, max): how late timers and I/O callbacks ran"
})
const fullCollections = Metric.counter("gc_full_collections_total", {
  description: "Full (mark-compact) garbage collections"
})

/**
 * Process gauges for /metrics, refreshed every 10 s: memory (resident, heap, heap after the latest full
 * collection, external), CPU, and the event loop's delay over each window (`monitorEventLoopDelay`,
 * reset at every sample). The heap after a full collection is what a leak shows in: the heap in use at
 * an arbitrary instant mostly measures garbage not yet collected.
 */
export const layerProcessMetrics = Layer.effectDiscard(
  Effect.gen(function* () {
    let afterGc: number | undefined
    let collections = 0
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        const observer = new PerformanceObserver((list) => {
          for (const entry of list.getEntries()) {
            if (
              (entry as unknown as { detail?: { kind?: number } }).detail?.kind ===
              constants.NODE_PERFORMANCE_GC_MAJOR
            ) {
              collections++
              // read as soon as the collection is reported: little has been allocated since
              afterGc = v8.getHeapStatistics().used_heap_size
            }
          }
        })
        observer.observe({ entryTypes: ["gc"] })
        return observer
      }),
      (observer) => Effect.sync(() => observer.disconnect())
    )
    const delay = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const histogram = monitorEventLoopDelay({ resolution: loopResolutionMillis })
        histogram.enable()
        return histogram
      }),
      (histogram) => Effect.sync(() => histogram.disable())
    )
    let cpu = process.cpuUsage()
    const sample = Effect.suspend(() => {
      const memory = process.memoryUsage()
      const used = process.cpuUsage(cpu)
      cpu = process.cpuUsage()
      // the histogram records, in nanoseconds, the whole interval between its timer's runs, the timer's
      // own resolution included (idle, p50 is the resolution): the delay is what lies beyond it
      const seconds = (nanos: number) =>
        Number.isFinite(nanos) ? Math.max(0, nanos / 1e6 - loopResolutionMillis) / 1e3 : 0
      const window = { p50: delay.percentile(50), p99: delay.percentile(99), max: delay.max }
      delay.reset()
      const taken = collections
      collections = 0
      return Effect.all([
        Metric.update(residentMemory, memory.rss),
        Metric.update(heapUsed, memory.heapUsed),
        ...(afterGc === undefined ? [] : [Metric.update(heapAfterGc, afterGc)]),
        Metric.update(externalMemory, memory.external),
        Metric.update(cpuSeconds, (used.user + used.system) / 1e6),
        Metric.update(fullCollections, taken),
        ...Object.entries(window).map(([stat, nanos]) =>
          Metric.update(Metric.withAttributes(loopDelay, { stat }), seconds(nanos))
        )
      ])
    })
    yield* Effect.forkScoped(Effect.repeat(sample, Schedule.spaced(processSampleMillis)))
  })
)
