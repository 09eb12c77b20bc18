/**
 * The child side of the benchmarks' plain processes (`bare-baileys-process.ts`, `gateway-process.ts`):
 * plain Node, no Effect, so that the bare baseline carries nothing of the gateway's. A process forked
 * with IPC answers each `measure` request with its memory, read after a full collection (run it with
 * `--expose-gc`), writes a heap snapshot when asked, and ends when the benchmark that forked it goes.
 */
import * as v8 from "node:v8"

export interface MeasureRequest {
  readonly kind: "measure"
}

export interface SnapshotRequest {
  readonly kind: "snapshot"
  readonly file: string
}

export interface SnapshotReport {
  readonly kind: "snapshot"
  readonly file: string
}

export interface MemoryReport {
  readonly kind: "memory"
  readonly heapUsed: number
  /** The heap V8 holds from the system, used or not. */
  readonly heapTotal: number
  /** Memory outside the heap held by JavaScript objects (Buffers, ArrayBuffers). */
  readonly external: number
  readonly rss: number
  /** Whether a full garbage collection ran first. */
  readonly collected: boolean
}

/** This process's memory, read after a full collection when one can be asked for (`--expose-gc`). */
export const measureMemory = async (): Promise<MemoryReport> => {
  const collect = globalThis.gc
  if (collect !== undefined) {
    collect()
    // finalizers and weak references queued by the first pass are released by the second
    await new Promise((resolve) => setImmediate(resolve))
    collect()
  }
  const { heapUsed, heapTotal, external, rss } = process.memoryUsage()
  return { kind: "memory", heapUsed, heapTotal, external, rss, collected: collect !== undefined }
}

/** Answers `measure` requests over IPC; exits once the parent is gone. */
export const answerMemoryRequests = () => {
  if (process.send === undefined) {
    console.error("this process reports to the benchmark that forks it, over IPC")
    process.exit(2)
  }
  process.on("message", (request: { readonly kind?: unknown; readonly file?: unknown }) => {
    if (request.kind === "measure") void measureMemory().then((report) => process.send!(report))
    if (request.kind === "snapshot" && typeof request.file === "string") {
      v8.writeHeapSnapshot(request.file)
      process.send!({ kind: "snapshot", file: request.file } satisfies SnapshotReport)
    }
  })
  process.on("disconnect", () => process.exit(0))
}
