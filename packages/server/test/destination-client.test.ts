import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Layer } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as tls from "node:tls"
import { pathToFileURL } from "node:url"
import {
  DestinationClient,
  type DestinationClientOptions,
  excerptBytes,
  layerDestinationClientWith,
  parseRetryAfter,
  requireSuccess
} from "../src/webhooks/destinationClient.ts"
import { SsrfGuard } from "../src/webhooks/ssrfGuard.ts"
import { hostileDestinations, hostileNames, layerGuard } from "./support/destinations.ts"
import { runUnderNode } from "./support/nodeLoader.ts"

interface Received {
  readonly method: string
  readonly url: string
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

type Handler = (request: http.IncomingMessage, response: http.ServerResponse) => void

/**
 * A webhook receiver on a free port of `host` (`::` answers on every local address, IPv4 too); it
 * records each request and counts the connections made to it.
 */
const receiver = (handle: Handler, host = "127.0.0.1") =>
  Effect.gen(function* () {
    const received: Array<Received> = []
    const sockets: Array<net.Socket> = []
    const server = yield* Effect.acquireRelease(
      Effect.promise(
        () =>
          new Promise<http.Server>((resolve) => {
            const server = http.createServer((request, response) => {
              const chunks: Array<Buffer> = []
              request.on("data", (chunk: Buffer) => chunks.push(chunk))
              request.on("end", () => {
                received.push({
                  method: request.method ?? "",
                  url: request.url ?? "",
                  headers: request.headers,
                  body: Buffer.concat(chunks).toString()
                })
                handle(request, response)
              })
            })
            server.on("connection", (socket) => sockets.push(socket))
            server.listen(0, host, () => resolve(server))
          })
      ),
      (server) =>
        Effect.promise(
          () =>
            new Promise<void>((resolve) => {
              server.closeAllConnections()
              server.close(() => resolve())
            })
        )
    )
    return { port: (server.address() as net.AddressInfo).port, received, sockets }
  })

const answer =
  (status: number, headers: Record<string, string> = {}, body = ""): Handler =>
  (_request, response) => {
    response.writeHead(status, headers)
    response.end(body)
  }

/** A TCP server that accepts connections and never says a word (a TLS handshake to it never completes). */
const silentServer = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{ server: net.Server; sockets: Array<net.Socket> }>((resolve) => {
        const sockets: Array<net.Socket> = []
        const server = net.createServer((socket) => void sockets.push(socket))
        server.listen(0, "127.0.0.1", () => resolve({ server, sockets }))
      })
  ),
  ({ server, sockets }) =>
    Effect.promise(() => {
      sockets.forEach((socket) => socket.destroy())
      return new Promise<void>((resolve) => server.close(() => resolve()))
    })
)

const allowLocal = { WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32,::1/128" }

/** The client over the guard as the gateway builds it from `env`, with a resolver that knows only `names`. */
const layerClient = (
  env: Record<string, string> = allowLocal,
  names: Record<string, ReadonlyArray<ReadonlyArray<string>>> = hostileNames,
  options: Partial<DestinationClientOptions> = {}
) => layerDestinationClientWith(options).pipe(Layer.provideMerge(layerGuard(env, names)))

const post = (url: string, body = `{"type":"webhook.test"}`, headers: Record<string, string> = {}) =>
  DestinationClient.use((client) =>
    client.post(url, { headers: { "content-type": "application/json", ...headers }, body })
  )

/** A self-signed certificate for receiver.test, made with openssl for this run. */
const selfSignedCertificate = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "whatisup-tls-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
).pipe(
  Effect.map((dir) => {
    const key = path.join(dir, "key.pem")
    const cert = path.join(dir, "cert.pem")
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "1",
        "-subj",
        "/CN=receiver.test",
        "-addext",
        "subjectAltName=DNS:receiver.test"
      ],
      { stdio: "ignore" }
    )
    return { key: fs.readFileSync(key), cert: fs.readFileSync(cert) }
  })
)

const clientModule = pathToFileURL(
  path.resolve(import.meta.dirname, "../src/webhooks/destinationClient.ts")
).href
const guardModule = pathToFileURL(path.resolve(import.meta.dirname, "../src/webhooks/ssrfGuard.ts")).href
const configModule = pathToFileURL(path.resolve(import.meta.dirname, "../src/config/config.ts")).href

/** Posts in a child process under Node's own ESM loader (undici and ipaddr.js are CommonJS). */
const postUnderNode = (env: Record<string, string>, url: string) =>
  runUnderNode(
    [
      `import { Effect, Layer } from "effect"`,
      `import { layerConfig } from ${JSON.stringify(configModule)}`,
      `import { layerResolver, layerSsrfGuard } from ${JSON.stringify(guardModule)}`,
      `import { DestinationClient, layerDestinationClient } from ${JSON.stringify(clientModule)}`,
      `const layer = layerDestinationClient.pipe(Layer.provide(layerSsrfGuard), Layer.provide([layerConfig, layerResolver]))`,
      `const answer = await Effect.runPromise(DestinationClient.use((client) =>`,
      `  client.post(${JSON.stringify(url)}, { headers: {}, body: "{}" })).pipe(`,
      `  Effect.match({ onFailure: (error) => error._tag, onSuccess: ({ status, excerpt }) => ({ status, excerpt }) }),`,
      `  Effect.provide(layer)))`,
      `console.log(JSON.stringify(answer))`
    ],
    env
  )

describe("destination client", () => {
  it.live("refuses every hostile destination without connecting anywhere", () =>
    Effect.gen(function* () {
      // every local address answers on this port: a connection made to any loopback form would be counted
      const local = yield* receiver(answer(204), "::")
      const hostile = hostileDestinations(local.port)
      expect(hostile.length).toBeGreaterThanOrEqual(40)
      for (const { url, reason } of hostile) {
        const refused = yield* Effect.flip(post(url))
        expect({
          url,
          refused: refused._tag,
          reason: "reason" in refused ? refused.reason : undefined
        }).toEqual({
          url,
          refused: "DestinationBlocked",
          reason
        })
      }
      expect(local.sockets).toHaveLength(0)
      // the same receiver is reached once its address is allowed: the count above would have seen a connection
      const allowed = yield* post(`http://[::ffff:127.0.0.1]:${local.port}/hook`).pipe(
        Effect.provide(layerClient({ WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32" }))
      )
      expect(allowed.status).toBe(204)
      expect(local.sockets).toHaveLength(1)
    }).pipe(Effect.provide(layerClient({})))
  )

  it.live("a name vetted as public at create and resolving to a private address at delivery is refused", () =>
    Effect.gen(function* () {
      const local = yield* receiver(answer(204))
      const names = { "rebinding.test": [["8.8.8.8"], ["127.0.0.1"]] }
      yield* Effect.gen(function* () {
        const guard = yield* SsrfGuard
        expect((yield* guard.vet(`http://rebinding.test:${local.port}/hook`)).addresses).toEqual([
          { address: "8.8.8.8", family: 4 }
        ])
        const refused = yield* Effect.flip(post(`http://rebinding.test:${local.port}/hook`))
        expect(refused).toMatchObject({
          _tag: "DestinationBlocked",
          reason: "non_public_address",
          address: "127.0.0.1"
        })
      }).pipe(Effect.provide(layerClient({}, names)))
      expect(local.sockets).toHaveLength(0)
    })
  )

  it.live("connects to the vetted address only, with the URL's host in the Host header", () =>
    Effect.gen(function* () {
      const local = yield* receiver(answer(200, { "content-type": "text/plain" }, "thanks"))
      // receiver.test exists only in the stub resolver: the connection can only have gone to its vetted address
      const answered = yield* post(`http://receiver.test:${local.port}/hooks/in?x=1`, `{"n":1}`, {
        "webhook-id": "evt_1"
      }).pipe(Effect.provide(layerClient(allowLocal, { "receiver.test": [["127.0.0.1"]] })))
      expect(answered).toMatchObject({ status: 200, retryAfter: undefined, excerpt: "thanks" })
      expect(answered.durationMillis).toBeGreaterThanOrEqual(0)
      expect(local.received).toHaveLength(1)
      expect(local.received[0]).toMatchObject({ method: "POST", url: "/hooks/in?x=1", body: `{"n":1}` })
      expect(local.received[0]!.headers).toMatchObject({
        host: `receiver.test:${local.port}`,
        "content-type": "application/json",
        "webhook-id": "evt_1"
      })
    })
  )

  it.live("a redirect is answered as its status and never followed", () =>
    Effect.gen(function* () {
      const local = yield* receiver((request, response) => {
        const location = request.url === "/first" ? "http://10.0.0.1/" : `http://127.0.0.1:${port}/followed`
        response.writeHead(request.url === "/first" ? 302 : 307, { location })
        response.end()
      })
      const port = local.port
      expect((yield* post(`http://127.0.0.1:${port}/first`)).status).toBe(302)
      expect((yield* post(`http://127.0.0.1:${port}/second`)).status).toBe(307)
      expect(local.received.map(({ url }) => url)).toEqual(["/first", "/second"])
    }).pipe(Effect.provide(layerClient()))
  )

  it.live("failure statuses come back with their status, Retry-After and the start of their body", () =>
    Effect.gen(function* () {
      const later = new Date(Date.now() + 120_000).toUTCString()
      const local = yield* receiver((request, response) => {
        const status = Number(request.url!.slice(1))
        const headers: Record<string, string> =
          status === 429 ? { "retry-after": "7" } : status === 503 ? { "retry-after": later } : {}
        response.writeHead(status, headers)
        response.end(`status ${status}`)
      })
      const at = (status: number) => post(`http://127.0.0.1:${local.port}/${status}`)
      expect(yield* at(500)).toMatchObject({ status: 500, retryAfter: undefined, excerpt: "status 500" })
      expect(yield* at(410)).toMatchObject({ status: 410, retryAfter: undefined, excerpt: "status 410" })
      const tooMany = yield* at(429)
      expect(tooMany.status).toBe(429)
      expect(Duration.toMillis(tooMany.retryAfter!)).toBe(7_000)
      const unavailable = yield* at(503)
      expect(Duration.toSeconds(unavailable.retryAfter!)).toBeGreaterThan(100)
      expect(Duration.toSeconds(unavailable.retryAfter!)).toBeLessThanOrEqual(120)
      // an attempt records any status but a 2xx as HttpStatus
      expect(yield* Effect.flip(requireSuccess(tooMany))).toMatchObject({
        _tag: "HttpStatus",
        status: 429,
        excerpt: "status 429",
        retryAfter: Duration.seconds(7)
      })
      const accepted = yield* at(204)
      expect(yield* requireSuccess(accepted)).toBe(accepted)
    }).pipe(Effect.provide(layerClient()))
  )

  it.live("a receiver that never answers, stops in its body, or trickles it is a ResponseTimeout", () =>
    Effect.gen(function* () {
      const local = yield* receiver((request, response) => {
        if (request.url === "/stalls") {
          response.writeHead(200)
          response.write("a first part")
        }
        if (request.url === "/trickles") {
          // a byte well within every idle timeout, forever: only the total timeout ends it
          response.writeHead(200)
          const trickle = setInterval(() => response.write("."), 20)
          response.on("close", () => clearInterval(trickle))
        }
      })
      const silent = yield* Effect.flip(post(`http://127.0.0.1:${local.port}/hangs`))
      expect(silent).toMatchObject({ _tag: "ResponseTimeout" })
      expect(silent.detail).toMatch(/did not answer within 300 ms/)
      expect(yield* Effect.flip(post(`http://127.0.0.1:${local.port}/stalls`))).toMatchObject({
        _tag: "ResponseTimeout"
      })
      expect(yield* Effect.flip(post(`http://127.0.0.1:${local.port}/trickles`))).toMatchObject({
        _tag: "ResponseTimeout"
      })
    }).pipe(Effect.provide(layerClient(allowLocal, {}, { totalTimeout: Duration.millis(300) })))
  )

  it.live("a receiver that drops the connection or refuses it is a ConnectionReset saying which", () =>
    Effect.gen(function* () {
      const local = yield* receiver((request) => request.socket.destroy())
      const dropped = yield* Effect.flip(post(`http://127.0.0.1:${local.port}/hook`))
      expect(dropped).toMatchObject({ _tag: "ConnectionReset" })
      expect(dropped.detail).toMatch(/closed the connection before a complete answer|reset the connection/)

      const closed = yield* Effect.promise(
        () =>
          new Promise<number>((resolve) => {
            const server = net.createServer().listen(0, "127.0.0.1", () => {
              const { port } = server.address() as net.AddressInfo
              server.close(() => resolve(port))
            })
          })
      )
      const refused = yield* Effect.flip(post(`http://127.0.0.1:${closed}/hook`))
      expect(refused).toMatchObject({
        _tag: "ConnectionReset",
        detail: `127.0.0.1:${closed} (127.0.0.1) refused the connection`
      })
    }).pipe(Effect.provide(layerClient()))
  )

  it.live(
    "no connection within the connect timeout (a TLS handshake nobody answers) is a ConnectTimeout",
    () =>
      Effect.gen(function* () {
        const { server, sockets } = yield* silentServer
        const { port } = server.address() as net.AddressInfo
        const timedOut = yield* Effect.flip(post(`https://receiver.test:${port}/hook`)).pipe(
          Effect.provide(
            layerClient(
              allowLocal,
              { "receiver.test": [["127.0.0.1"]] },
              { connectTimeout: Duration.millis(200) }
            )
          )
        )
        expect(timedOut).toMatchObject({ _tag: "ConnectTimeout" })
        expect(timedOut.detail).toBe(`no connection to receiver.test:${port} (127.0.0.1) within 200 ms`)
        expect(sockets).toHaveLength(1)
      })
  )

  it.live(
    "a certificate that does not verify is a TlsFailure, after a handshake that named the URL's host",
    () =>
      Effect.gen(function* () {
        const { key, cert } = yield* selfSignedCertificate
        const serverNames: Array<string> = []
        const server = yield* Effect.acquireRelease(
          Effect.promise(
            () =>
              new Promise<https.Server>((resolve) => {
                const server = https.createServer(
                  {
                    key,
                    cert,
                    SNICallback: (name, callback) => {
                      serverNames.push(name)
                      callback(null, tls.createSecureContext({ key, cert }))
                    }
                  },
                  answer(204)
                )
                server.listen(0, "127.0.0.1", () => resolve(server))
              })
          ),
          (server) => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
        )
        const { port } = server.address() as net.AddressInfo
        const failed = yield* Effect.flip(post(`https://receiver.test:${port}/hook`)).pipe(
          Effect.provide(layerClient(allowLocal, { "receiver.test": [["127.0.0.1"]] }))
        )
        expect(failed).toMatchObject({ _tag: "TlsFailure" })
        expect(failed.detail).toMatch(/self-signed certificate \(DEPTH_ZERO_SELF_SIGNED_CERT\)$/)
        expect(serverNames).toEqual(["receiver.test"])
      })
  )

  it.live("reads 4 KiB of a 10 MB body and stops downloading; a character cut at the end is dropped", () =>
    Effect.gen(function* () {
      const stopped = yield* Deferred.make<{ sent: number; finished: boolean }>()
      const local = yield* receiver((_request, response) => {
        // three bytes per character: 4 KiB ends inside one
        const chunk = Buffer.from("€".repeat(16 * 1024))
        let sent = 0
        response.on("close", () =>
          Deferred.doneUnsafe(stopped, Effect.succeed({ sent, finished: response.writableFinished }))
        )
        response.writeHead(200, { "content-type": "text/plain; charset=utf-8" })
        const write = () => {
          while (sent < 10 * 1024 * 1024) {
            sent += chunk.length
            if (!response.write(chunk)) return void response.once("drain", write)
          }
          response.end()
        }
        write()
      })
      const answered = yield* post(`http://127.0.0.1:${local.port}/hook`)
      expect(Buffer.byteLength(answered.excerpt)).toBe(excerptBytes - 1)
      expect(answered.excerpt).toBe("€".repeat(Math.floor(excerptBytes / 3)))
      const { sent, finished } = yield* Deferred.await(stopped)
      expect(finished).toBe(false)
      expect(sent).toBeLessThan(10 * 1024 * 1024)
    }).pipe(Effect.provide(layerClient()))
  )

  it.live("HTTP_PROXY, HTTPS_PROXY and ALL_PROXY are ignored", () =>
    Effect.gen(function* () {
      const proxy = yield* receiver(answer(502))
      const local = yield* receiver(answer(204))
      const names = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"]
      const saved = names.map((name) => [name, process.env[name]] as const)
      yield* Effect.acquireRelease(
        Effect.sync(() => names.forEach((name) => (process.env[name] = `http://127.0.0.1:${proxy.port}`))),
        () =>
          Effect.sync(() =>
            saved.forEach(([name, value]) =>
              value === undefined ? delete process.env[name] : (process.env[name] = value)
            )
          )
      )
      expect((yield* post(`http://127.0.0.1:${local.port}/hook`)).status).toBe(204)
      expect(local.received).toHaveLength(1)
      expect(proxy.sockets).toHaveLength(0)
    }).pipe(Effect.provide(layerClient()))
  )

  it.live(
    "keeps connections alive between attempts and closes the least recently used pool beyond its bound",
    () =>
      Effect.gen(function* () {
        const first = yield* receiver(answer(204))
        const second = yield* receiver(answer(204))
        for (let i = 0; i < 6; i++) yield* post(`http://127.0.0.1:${first.port}/hook`)
        expect(first.received).toHaveLength(6)
        // undici opens a second connection when a request follows the previous answer at once; never more here
        expect(first.sockets.length).toBeLessThanOrEqual(2)
        const kept = first.sockets.length
        yield* post(`http://127.0.0.1:${first.port}/hook`)
        expect(first.sockets).toHaveLength(kept)
        // one pool at most: reaching the second receiver closes the first receiver's pool
        yield* post(`http://127.0.0.1:${second.port}/hook`)
        yield* post(`http://127.0.0.1:${first.port}/hook`)
        expect(first.sockets).toHaveLength(kept + 1)
      }).pipe(Effect.provide(layerClient(allowLocal, {}, { maxPools: 1 })))
  )

  it.live("posts the same under Node's own module loader, where undici and ipaddr.js are CommonJS", () =>
    Effect.gen(function* () {
      const local = yield* receiver(answer(200, {}, "ok"))
      const allowed = yield* postUnderNode(
        { WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32" },
        `http://127.0.0.1:${local.port}/`
      )
      expect(allowed.stderr).toBe("")
      expect(JSON.parse(allowed.stdout)).toEqual({ status: 200, excerpt: "ok" })
      const refused = yield* postUnderNode({}, `http://127.0.0.1:${local.port}/`)
      expect(JSON.parse(refused.stdout)).toBe("DestinationBlocked")
      expect(local.received).toHaveLength(1)
    })
  )
})

describe("Retry-After", () => {
  const now = Date.parse("2026-05-01T12:00:00Z")
  it("is read as seconds or as an HTTP-date, unclamped", () => {
    expect(parseRetryAfter("7", now)).toEqual(Duration.seconds(7))
    expect(parseRetryAfter(" 86400 ", now)).toEqual(Duration.seconds(86_400))
    expect(parseRetryAfter("Fri, 01 May 2026 12:00:30 GMT", now)).toEqual(Duration.seconds(30))
    expect(parseRetryAfter("Friday, 01-May-26 12:01:00 GMT", now)).toEqual(Duration.seconds(60))
    expect(parseRetryAfter("Fri May  1 13:00:00 2026", now)).toEqual(Duration.hours(1))
  })
  it("a date already past is no delay; an absent or unreadable value is none", () => {
    expect(parseRetryAfter("Fri, 01 May 2026 11:00:00 GMT", now)).toEqual(Duration.zero)
    expect(parseRetryAfter(undefined, now)).toBeUndefined()
    expect(parseRetryAfter("soon", now)).toBeUndefined()
    expect(parseRetryAfter("1.5", now)).toBeUndefined()
    expect(parseRetryAfter("-3", now)).toBeUndefined()
  })
})
