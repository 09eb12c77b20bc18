import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

export const gatewayMain = path.resolve(import.meta.dirname, "../../src/main.ts")
export const recordingGatewayMain = path.resolve(import.meta.dirname, "gateway-process.ts")
export const cliMain = path.resolve(import.meta.dirname, "../../../cli/src/main.ts")

/**
 * For a flaky failure's post-mortem: `WHATISUP_TEST_GATEWAY_LOGS=<dir>` also writes the output of
 * each gateway process started here to `<dir>/<node id>-<pid>.log` (the test keeps it only in
 * memory), and `WHATISUP_TEST_GATEWAY_LOG_LEVEL` sets their level in place of the test's. Gateways
 * a test runs in its own process are not affected.
 */
const logDir = process.env.WHATISUP_TEST_GATEWAY_LOGS
if (logDir !== undefined) fs.mkdirSync(logDir, { recursive: true })
const logLevel = process.env.WHATISUP_TEST_GATEWAY_LOG_LEVEL

export interface GatewayProcess {
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: Promise<number | null>
}

/**
 * A real gateway OS process, killed when the scope closes if still running; given Node options (a
 * benchmark's profiling) or `ownGroup`, stopped with SIGTERM first. With `ownGroup` it leads a
 * process group of its own, as a command started in a terminal does: a signal to the group
 * (`process.kill(-pid)`) is a terminal's Ctrl-C.
 */
export const spawnGateway = (
  env: Record<string, string | undefined>,
  main = gatewayMain,
  { ownGroup = false }: { readonly ownGroup?: boolean } = {}
) =>
  Effect.acquireRelease(
    Effect.sync((): GatewayProcess => {
      const child = spawn(process.execPath, [main], {
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          ...env,
          ...(logLevel === undefined ? {} : { LOG_LEVEL: logLevel })
        },
        stdio: ["ignore", "pipe", "pipe"],
        detached: ownGroup
      })
      let output = ""
      const logFile =
        logDir === undefined
          ? undefined
          : path.join(logDir, `${env.WHATISUP_NODE_ID ?? "node"}-${child.pid}.log`)
      const record = (chunk: Buffer) => {
        output += chunk
        if (logFile !== undefined) fs.appendFileSync(logFile, chunk)
      }
      child.stdout!.on("data", record)
      child.stderr!.on("data", record)
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
      return { child, output: () => output, exited }
    }),
    (gateway) =>
      Effect.promise(async () => {
        if (gateway.child.exitCode === null && gateway.child.signalCode === null) {
          // asked to stop first: an embedded PostgreSQL (a process group of its own) stops only with
          // the gateway's own stop, and a profiled one writes its profile as it stops
          if (ownGroup || (env.NODE_OPTIONS !== undefined && env.NODE_OPTIONS !== "")) {
            gateway.child.kill("SIGTERM")
            await Promise.race([gateway.exited, new Promise((resolve) => setTimeout(resolve, 30_000))])
          }
          gateway.child.kill("SIGKILL")
          await gateway.exited
        }
      })
  )

/** Polls `/readyz` until it answers 200; fails with the process's output if it exits first or never gets ready. */
export const waitReady = (gateway: GatewayProcess, api: string, attempts = 600) =>
  Effect.promise(async () => {
    for (let attempt = 0; ; attempt++) {
      if (attempt === attempts) {
        throw new Error(`${api}/readyz never answered 200 in ${attempts} tries:\n${gateway.output()}`)
      }
      if (gateway.child.exitCode !== null) {
        throw new Error(`the gateway exited with ${gateway.child.exitCode}:\n${gateway.output()}`)
      }
      try {
        const response = await fetch(`${api}/readyz`)
        if (response.status === 200) return
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  })

/** Runs the `whatisup` CLI to completion. */
export const runCli = (args: ReadonlyArray<string>, env: Record<string, string | undefined>) =>
  Effect.promise(
    () =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [cliMain, ...args], {
          env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
          stdio: ["ignore", "pipe", "pipe"]
        })
        let stdout = ""
        let stderr = ""
        child.stdout.on("data", (chunk) => (stdout += chunk))
        child.stderr.on("data", (chunk) => (stderr += chunk))
        child.on("exit", (code) => resolve({ code, stdout, stderr }))
      })
  )
