import * as http from "node:http"
import type { Body, Encoding, FuzzRequest } from "./requests.ts"
import { resolve, type World } from "./world.ts"

/** A request with its placeholders resolved, exactly as it goes on the wire. */
export interface WireRequest {
  readonly method: string
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: Buffer | undefined
  readonly from: string
}

export interface Answer {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  /** The body as text, cut at `keptBytes`; empty for an event stream, closed once it opened. */
  readonly text: string
  readonly streaming: boolean
}

/** A request the gateway left unanswered past the bound: it hangs. */
export class NoAnswer extends Error {}

// node:http refuses these in a path; a client would have to percent-encode them
const unsendable = /[^\u0021-\u007e]/gu

const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g

// a lone surrogate has no UTF-8 form: it goes as U+FFFD, as a browser sends it
const encode = (value: string, how: Encoding) => {
  const sendable = value.replace(loneSurrogate, "\ufffd")
  return how === "encoded" ? encodeURIComponent(sendable) : sendable.replace(unsendable, encodeURIComponent)
}

// node:http refuses header values outside latin-1 and control characters: what no client can send
const headerValue = (value: string) => value.replace(/[^\t\u0020-\u007e\u0080-\u00ff]/g, "?")

const bodyBytes = (world: World, body: Body | undefined) => {
  if (body === undefined) return undefined
  switch (body.kind) {
    case "json":
      // placeholders hold nothing JSON escapes: resolved in the text as in the value
      return Buffer.from(resolve(world, JSON.stringify(body.value) ?? "null"))
    case "text":
      return Buffer.from(resolve(world, body.text))
    case "bytes":
      return Buffer.from(body.bytes)
  }
}

export const toWire = (world: World, request: FuzzRequest, template: string): WireRequest => {
  const path = template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const [value, how] = request.path[name] ?? ["", "encoded"]
    return encode(resolve(world, value), how)
  })
  const query = request.query
    .map(([name, value, how]) => `${encode(resolve(world, name), how)}=${encode(resolve(world, value), how)}`)
    .join("&")
  return {
    method: request.method,
    path: query === "" ? path : `${path}?${query}`,
    headers: Object.fromEntries(
      Object.entries(request.headers).map(([name, value]) => [name, headerValue(resolve(world, value))])
    ),
    body: bodyBytes(world, request.body),
    from: request.from
  }
}

const keptBytes = 256 * 1024

/**
 * Sends one request on a connection of its own and waits at most `boundMillis` for the whole answer
 * (an event stream: for its head, then it is closed).
 */
export const send = (base: URL, request: WireRequest, boundMillis: number) =>
  new Promise<Answer>((done, fail) => {
    const abort = new AbortController()
    const timer = setTimeout(() => abort.abort(), boundMillis)
    const finish = (outcome: () => void) => {
      clearTimeout(timer)
      outcome()
    }
    const req = http.request(
      {
        host: base.hostname,
        port: base.port,
        method: request.method,
        path: request.path,
        // node:http sends a GET's body unframed unless told its length: a malformed request, not ours to test
        headers:
          request.body === undefined
            ? request.headers
            : { ...request.headers, "content-length": String(request.body.length) },
        localAddress: request.from,
        agent: false,
        signal: abort.signal
      },
      (res) => {
        const status = res.statusCode ?? 0
        if (status === 200 && res.headers["content-type"]?.startsWith("text/event-stream")) {
          res.destroy()
          return finish(() => done({ status, headers: res.headers, text: "", streaming: true }))
        }
        const chunks: Array<Buffer> = []
        let size = 0
        res.on("data", (chunk: Buffer) => {
          if (size < keptBytes) chunks.push(chunk)
          size += chunk.length
        })
        res.on("end", () =>
          finish(() =>
            done({
              status,
              headers: res.headers,
              text: Buffer.concat(chunks).toString("utf8"),
              streaming: false
            })
          )
        )
        res.on("error", (error) => finish(() => fail(failure(abort, boundMillis, error))))
      }
    )
    req.on("error", (error) => finish(() => fail(failure(abort, boundMillis, error))))
    req.end(request.body)
  })

const failure = (abort: AbortController, boundMillis: number, error: Error) =>
  abort.signal.aborted
    ? new NoAnswer(`no whole answer within ${boundMillis} ms`)
    : new Error(`the connection failed before a whole answer: ${error.message}`)
