import { Clock, Context, Duration, Effect, Layer } from "effect"
import type { LookupFunction } from "node:net"
import { performance } from "node:perf_hooks"
import type { Readable } from "node:stream"
import { StringDecoder } from "node:string_decoder"
import { Pool } from "undici"
import {
  type AttemptError,
  ConnectionReset,
  ConnectTimeout,
  DnsFailure,
  HttpStatus,
  ResponseTimeout,
  TlsFailure
} from "./attemptErrors.ts"
import { SsrfGuard } from "./ssrfGuard.ts"

export interface DestinationRequest {
  readonly headers: Record<string, string>
  readonly body: string
}

/** The receiver's answer, whatever its status: a 3xx is returned as it is, never followed. */
export interface DestinationResponse {
  readonly status: number
  readonly retryAfter: Duration.Duration | undefined
  /** The first 4 KiB of the body as UTF-8 (a character cut at the end is dropped). */
  readonly excerpt: string
  /** From the start of the vetting to the end of the excerpt. */
  readonly durationMillis: number
}

export interface DestinationClientOptions {
  /** TCP, and for https the TLS handshake too. */
  readonly connectTimeout: Duration.Duration
  /** From sending the request to the end of the excerpt. */
  readonly totalTimeout: Duration.Duration
  /** Connection pools kept (one per origin and vetted address); beyond it the least recently used is closed. */
  readonly maxPools: number
}

export const defaultDestinationClientOptions: DestinationClientOptions = {
  connectTimeout: Duration.seconds(5),
  totalTimeout: Duration.seconds(15),
  maxPools: 1_000
}

/** How much of a response body is read and kept; the rest is never downloaded. */
export const excerptBytes = 4_096

/** Posts one request to a destination the SSRF guard vets again first, connecting only to the vetted address. */
export class DestinationClient extends Context.Service<
  DestinationClient,
  {
    readonly post: (
      url: string,
      request: DestinationRequest
    ) => Effect.Effect<DestinationResponse, Exclude<AttemptError, HttpStatus>>
  }
>()("whatisup/DestinationClient") {}

const httpDate = /^[A-Za-z]{3,9},? /

/** `Retry-After` as delay-seconds or an HTTP-date, unclamped (a date past is no delay); `undefined` when absent or unreadable. */
export const parseRetryAfter = (
  value: string | undefined,
  nowMillis: number
): Duration.Duration | undefined => {
  if (value === undefined) return undefined
  const text = value.trim()
  if (/^\d+$/.test(text)) return Duration.seconds(Number(text))
  // every HTTP-date is in GMT, though the asctime form does not say so
  const at = httpDate.test(text) ? Date.parse(text.endsWith("GMT") ? text : `${text} GMT`) : Number.NaN
  return Number.isNaN(at) ? undefined : Duration.millis(Math.max(0, at - nowMillis))
}

/** The `HttpStatus` failure an attempt records for any answer but a success (2xx); null for a success. */
export const failureOf = (response: DestinationResponse): HttpStatus | null =>
  response.status >= 200 && response.status < 300
    ? null
    : new HttpStatus({ status: response.status, retryAfter: response.retryAfter, excerpt: response.excerpt })

/** A success (2xx) as it is; any other status as the `HttpStatus` failure an attempt records. */
export const requireSuccess = (
  response: DestinationResponse
): Effect.Effect<DestinationResponse, HttpStatus> => {
  const failure = failureOf(response)
  return failure === null ? Effect.succeed(response) : Effect.fail(failure)
}

/** Every lookup of the destination's name answers the vetted address: the connection cannot go anywhere else. */
export const pinnedLookup =
  (address: string, family: 4 | 6): LookupFunction =>
  (_hostname, options, callback) => {
    if (options.all) callback(null, [{ address, family }])
    else callback(null, address, family)
  }

/** Reads up to `excerptBytes` of a body, then destroys it so the rest is never downloaded (the connection closes). */
const readExcerpt = (body: Readable) =>
  new Promise<string>((resolve, reject) => {
    const chunks: Array<Buffer> = []
    let size = 0
    const done = () =>
      resolve(
        size === 0
          ? ""
          : new StringDecoder("utf8").write(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size))
      )
    const onData = (chunk: Buffer) => {
      const room = excerptBytes - size
      if (chunk.length > room) {
        chunks.push(chunk.subarray(0, room))
        size = excerptBytes
        body.off("data", onData).off("end", done)
        body.destroy()
        done()
      } else {
        chunks.push(chunk)
        size += chunk.length
      }
    }
    body.on("data", onData).once("end", done).once("error", reject)
  })

interface Answer {
  readonly status: number
  readonly retryAfter: string | undefined
  readonly excerpt: string
}

interface InFlight {
  readonly deadline: number
  readonly controller: AbortController
}

/** The reason an attempt is aborted with when its total timeout has passed. */
const deadlinePassed = new Error("the total timeout passed")

const codeOf = (error: unknown): string | undefined => {
  const { code, cause } = (error ?? {}) as { code?: unknown; cause?: { code?: unknown } }
  return typeof code === "string" ? code : typeof cause?.code === "string" ? cause.code : undefined
}

const tlsCode = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH|EPROTO)/

export const makeDestinationClient = (options: DestinationClientOptions) =>
  Effect.gen(function* () {
    const guard = yield* SsrfGuard
    const connectMillis = Duration.toMillis(options.connectTimeout)
    const totalMillis = Duration.toMillis(options.totalTimeout)
    // a Map keeps insertion order: re-inserting on use makes the first key the least recently used
    const pools = new Map<string, Pool>()
    // one sweep aborts every attempt past its deadline: far cheaper than a timer per attempt on the hot path
    const inFlight = new Set<InFlight>()
    const sweep = setInterval(
      () => {
        const now = performance.now()
        for (const attempt of inFlight) {
          if (attempt.deadline <= now) {
            inFlight.delete(attempt)
            attempt.controller.abort(deadlinePassed)
          }
        }
      },
      Math.max(10, Math.min(250, totalMillis / 10))
    ).unref()
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => {
        clearInterval(sweep)
        return Promise.allSettled(Array.from(pools.values(), (pool) => pool.destroy()))
      })
    )

    /** The keep-alive pool to this origin through this address, reused across attempts. */
    const poolFor = (url: URL, address: string, family: 4 | 6) => {
      const key = `${url.origin} ${address}`
      let pool = pools.get(key)
      if (pool === undefined) {
        pool = new Pool(url.origin, {
          connect: { timeout: connectMillis, lookup: pinnedLookup(address, family) },
          headersTimeout: totalMillis,
          bodyTimeout: totalMillis,
          allowH2: false
        })
        if (pools.size >= options.maxPools) {
          const [oldest, evicted] = pools.entries().next().value!
          pools.delete(oldest)
          // requests already sent on it finish; it closes after them
          evicted.close().catch(() => undefined)
        }
      } else {
        pools.delete(key)
      }
      pools.set(key, pool)
      return pool
    }

    const send = async (
      url: URL,
      address: string,
      family: 4 | 6,
      request: DestinationRequest,
      signal: AbortSignal
    ): Promise<Answer> => {
      const response = await poolFor(url, address, family).request({
        path: url.pathname + url.search,
        method: "POST",
        headers: request.headers,
        body: request.body,
        signal
      })
      const retryAfter = response.headers["retry-after"]
      return {
        status: response.statusCode,
        retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
        excerpt: await readExcerpt(response.body)
      }
    }

    const classify = (error: unknown, target: URL, address: string): Exclude<AttemptError, HttpStatus> => {
      const where = `${target.host} (${address})`
      const code = codeOf(error)
      const message = error instanceof Error ? error.message : String(error)
      switch (code) {
        case "UND_ERR_CONNECT_TIMEOUT":
        case "ETIMEDOUT":
          return new ConnectTimeout({ detail: `no connection to ${where} within ${connectMillis} ms` })
        case "UND_ERR_HEADERS_TIMEOUT":
        case "UND_ERR_BODY_TIMEOUT":
          return new ResponseTimeout({ detail: `${where} did not answer within ${totalMillis} ms` })
        case "ECONNREFUSED":
          return new ConnectionReset({ detail: `${where} refused the connection` })
        case "ECONNRESET":
        case "EPIPE":
          return new ConnectionReset({ detail: `${where} reset the connection (${code})` })
        case "UND_ERR_SOCKET":
          return new ConnectionReset({ detail: `${where} closed the connection before a complete answer` })
        case "EHOSTUNREACH":
        case "ENETUNREACH":
          return new ConnectionReset({ detail: `${where} is unreachable (${code})` })
        case "ENOTFOUND":
        case "EAI_AGAIN":
          return new DnsFailure({ detail: `${where} does not resolve (${code})` })
      }
      if (code?.startsWith("HPE_")) {
        return new ConnectionReset({
          detail: `${where} answered with something that is not HTTP (${message})`
        })
      }
      if (code !== undefined && tlsCode.test(code)) {
        return new TlsFailure({ detail: `TLS with ${where} failed: ${message} (${code})` })
      }
      return new ConnectionReset({
        detail: `the connection to ${where} failed: ${message} (${code ?? "no code"})`
      })
    }

    return DestinationClient.of({
      // untraced: it runs for every webhook attempt, and a span with its captured stack is a good part of its own cost
      post: Effect.fnUntraced(function* (url: string, request: DestinationRequest) {
        const started = performance.now()
        const { url: target, addresses } = yield* guard.vet(url)
        // the first address in the resolver's order, as any client would connect to
        const { address, family } = addresses[0]!
        const answer = yield* Effect.callback<Answer, Exclude<AttemptError, HttpStatus>>((resume) => {
          const attempt: InFlight = {
            deadline: performance.now() + totalMillis,
            controller: new AbortController()
          }
          inFlight.add(attempt)
          send(target, address, family, request, attempt.controller.signal).then(
            (answer) => {
              inFlight.delete(attempt)
              resume(Effect.succeed(answer))
            },
            (error) => {
              inFlight.delete(attempt)
              resume(
                Effect.fail(
                  attempt.controller.signal.reason === deadlinePassed
                    ? new ResponseTimeout({
                        detail: `${target.host} (${address}) did not answer within ${totalMillis} ms`
                      })
                    : classify(error, target, address)
                )
              )
            }
          )
          return Effect.sync(() => {
            inFlight.delete(attempt)
            attempt.controller.abort()
          })
        })
        return {
          status: answer.status,
          retryAfter:
            answer.retryAfter === undefined
              ? undefined
              : parseRetryAfter(answer.retryAfter, yield* Clock.currentTimeMillis),
          excerpt: answer.excerpt,
          durationMillis: Math.round(performance.now() - started)
        }
      })
    })
  })

/** The client with its timeouts and pool bound changed (tests shorten the timeouts). */
export const layerDestinationClientWith = (options: Partial<DestinationClientOptions>) =>
  Layer.effect(DestinationClient, makeDestinationClient({ ...defaultDestinationClientOptions, ...options }))

/** 5 s to connect, 15 s in all, at most 1,000 pools; needs the `SsrfGuard`. */
export const layerDestinationClient = layerDestinationClientWith({})
