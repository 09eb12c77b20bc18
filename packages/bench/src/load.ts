import { Effect } from "effect"
import { execFile } from "node:child_process"
import { createRequire } from "node:module"

/** autocannon's command, run by this Node: in a process of its own, so the load costs the server's event loop nothing. */
const autocannon = createRequire(import.meta.url).resolve("autocannon/autocannon.js")

export interface Load {
  readonly url: string
  readonly headers: Record<string, string>
  /** The body of each request: POSTed when given, else each request is a GET. */
  readonly body?: string
  readonly connections: number
  readonly seconds: number
}

/** What one load run measured: answers by status class, and latency in whole milliseconds (autocannon's resolution). */
export interface LoadFigures {
  readonly seconds: number
  readonly accepted: number
  readonly non2xx: number
  /** How many answers each status had, as `"429": 3`: what the non-2xx were. */
  readonly statuses: Record<string, number>
  readonly errors: number
  readonly perSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
}

interface AutocannonResult {
  readonly duration: number
  readonly errors: number
  readonly timeouts: number
  readonly non2xx: number
  readonly "2xx": number
  readonly statusCodeStats?: Record<string, { readonly count: number }>
  readonly latency: { readonly p50: number; readonly p99: number }
}

/** GETs `url`, or POSTs `body` to it, over `connections` kept-alive connections for `seconds`, with autocannon. */
export const httpLoad = (load: Load) =>
  Effect.callback<LoadFigures, Error>((resume) => {
    const args = [
      autocannon,
      "--connections",
      String(load.connections),
      "--duration",
      String(load.seconds),
      "--method",
      load.body === undefined ? "GET" : "POST",
      ...Object.entries(load.headers).flatMap(([name, value]) => ["--headers", `${name}=${value}`]),
      ...(load.body === undefined ? [] : ["--body", load.body]),
      "--no-progress",
      "--json",
      load.url
    ]
    const child = execFile(
      process.execPath,
      args,
      { maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error !== null)
          return resume(Effect.fail(new Error(`autocannon failed: ${error.message}\n${stderr}`)))
        const result = JSON.parse(stdout) as AutocannonResult
        resume(
          Effect.succeed({
            seconds: result.duration,
            accepted: result["2xx"],
            non2xx: result.non2xx,
            statuses: Object.fromEntries(
              Object.entries(result.statusCodeStats ?? {}).map(([status, { count }]) => [status, count])
            ),
            errors: result.errors + result.timeouts,
            perSecond: Math.round(result["2xx"] / result.duration),
            p50Ms: result.latency.p50,
            p99Ms: result.latency.p99
          })
        )
      }
    )
    return Effect.sync(() => child.kill())
  })
