import { Duration, Effect, type Scope } from "effect"
import { fork } from "node:child_process"
import * as path from "node:path"
import type { MemoryReport, SnapshotReport, SnapshotRequest } from "./memoryReadings.ts"
import { type MemoryReading, ScenarioFailed } from "./measure.ts"

/** How long a plain process may take to answer one step (a report, a reading). */
const stepBound = Duration.seconds(60)

/** A plain process's memory: its heap and resident set, and what it holds beside them. */
export type ProcessMemory = MemoryReading & Pick<MemoryReport, "heapTotal" | "external">

/** A plain process the benchmark forked with IPC: what it reports, waited for, and its memory. */
export interface IpcProcess {
  readonly pid: number
  /** Why it ended (its exit, or a failure to reach it), once it has; else undefined. */
  readonly ended: () => string | undefined
  /** The next report `accept` takes, kept since it came or still to come; fails past a bound or if the process exits. */
  readonly next: <R>(
    what: string,
    accept: (report: unknown) => report is R
  ) => Effect.Effect<R, ScenarioFailed>
  readonly send: (message: object) => Effect.Effect<void, ScenarioFailed>
  /** Its memory, read after a full collection (see `memoryReadings.ts`). */
  readonly memory: Effect.Effect<ProcessMemory, ScenarioFailed>
  /** Writes its heap to `<BENCH_HEAP_SNAPSHOT_DIR>/<name>.heapsnapshot`, when that is set; else nothing. */
  readonly snapshot: (name: string) => Effect.Effect<void, ScenarioFailed>
}

/** Set to a directory, the plain processes write heap snapshots there at each reading (see `heapDiff.ts`). */
const snapshotDir = process.env.BENCH_HEAP_SNAPSHOT_DIR

const isMemoryReport = (report: unknown): report is MemoryReport =>
  (report as { readonly kind?: unknown } | null)?.kind === "memory"

const isSnapshotReport = (report: unknown): report is SnapshotReport =>
  (report as { readonly kind?: unknown } | null)?.kind === "snapshot"

/**
 * Forks `main` (a TypeScript file, run by this Node with `--expose-gc`) with IPC until the scope
 * closes, then kills it. `env` is its whole environment.
 */
export const forkIpcProcess = (
  main: string,
  args: ReadonlyArray<string>,
  env: Record<string, string | undefined> = process.env
): Effect.Effect<IpcProcess, never, Scope.Scope> =>
  Effect.gen(function* () {
    const kept: Array<unknown> = []
    const waiting: Array<{
      readonly accept: (report: unknown) => boolean
      readonly settle: (report: unknown, failure?: Error) => void
    }> = []
    let ended: Error | undefined
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        fork(main, [...args], {
          execArgv: ["--expose-gc"],
          env,
          stdio: ["ignore", "inherit", "inherit", "ipc"]
        })
      ),
      // asked to stop first (a profiled gateway writes its profile as it stops), then killed
      (child) =>
        Effect.promise(async () => {
          if (child.exitCode !== null || child.signalCode !== null) return
          const exited = new Promise((resolve) => child.once("exit", resolve))
          child.kill("SIGTERM")
          const stopped = await Promise.race([
            exited.then(() => true),
            new Promise((resolve) => setTimeout(() => resolve(false), 10_000))
          ])
          if (!stopped) {
            child.kill("SIGKILL")
            await exited
          }
        })
    )
    child.on("message", (report: unknown) => {
      const index = waiting.findIndex((waiter) => waiter.accept(report))
      if (index === -1) kept.push(report)
      else waiting.splice(index, 1)[0]!.settle(report)
    })
    const end = (error: Error) => {
      ended ??= error
      for (const waiter of waiting.splice(0)) waiter.settle(undefined, ended)
    }
    child.once("exit", (code, signal) => end(new Error(`${main} exited (${signal ?? code})`)))
    // it could not be started, or a message could not reach it
    child.on("error", (error) => end(error))

    const next = <R>(what: string, accept: (report: unknown) => report is R) =>
      Effect.callback<R, ScenarioFailed>((resume) => {
        const settle = (report: unknown, failure?: Error) =>
          resume(
            failure === undefined
              ? Effect.succeed(report as R)
              : Effect.fail(new ScenarioFailed({ message: `${what}: ${failure.message}` }))
          )
        const index = kept.findIndex(accept)
        if (index !== -1) return settle(kept.splice(index, 1)[0])
        if (ended !== undefined) return settle(undefined, ended)
        const waiter = { accept, settle }
        waiting.push(waiter)
        return Effect.sync(() => {
          const at = waiting.indexOf(waiter)
          if (at !== -1) waiting.splice(at, 1)
        })
      }).pipe(
        Effect.timeoutOrElse({
          duration: stepBound,
          orElse: () =>
            Effect.fail(
              new ScenarioFailed({ message: `${what}: nothing within ${Duration.format(stepBound)}` })
            )
        })
      )
    const send = (message: object) =>
      Effect.suspend(() =>
        ended === undefined && child.connected
          ? Effect.sync(() => void child.send(message))
          : Effect.fail(
              new ScenarioFailed({ message: `${main} is gone: ${ended?.message ?? "disconnected"}` })
            )
      )
    return {
      pid: child.pid!,
      ended: () => ended?.message,
      next,
      send,
      memory: Effect.gen(function* () {
        yield* send({ kind: "measure" })
        const { kind: _, ...memory } = yield* next(`${main}'s memory`, isMemoryReport)
        return memory
      }),
      snapshot: (name) =>
        snapshotDir === undefined
          ? Effect.void
          : Effect.gen(function* () {
              const file = path.join(snapshotDir, `${name}.heapsnapshot`)
              yield* send({ kind: "snapshot", file } satisfies SnapshotRequest)
              yield* next(`${main}'s heap snapshot`, isSnapshotReport)
            })
    }
  })
