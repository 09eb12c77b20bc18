import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as http from "node:http"
import * as net from "node:net"
import { adminOf } from "./support/admin.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { request } from "./support/http.ts"
import { waitUntil } from "./support/waits.ts"

const metricsToken = "m".repeat(40)

/**
 * Starts a POST that declares a body of `declaredBytes` and sends only its first 64 KiB, on a raw
 * socket (an HTTP client would stop sending once answered, and hide whether the server hung up): a
 * server that reads before it refuses never answers it. The socket is destroyed when the scope closes.
 */
const startHugePost = (url: string, declaredBytes: number, headers: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const seen: { status?: number; body: string; hungUp?: string; written: number } = {
        body: "",
        written: 0
      }
      const { hostname, port, pathname } = new URL(url)
      const socket = net.connect(Number(port), hostname)
      let received = ""
      socket.setEncoding("utf8")
      socket.on("data", (data: string) => {
        received += data
        const [head = "", body] = received.split("\r\n\r\n")
        if (body === undefined) return
        seen.status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1])
        seen.body = /transfer-encoding: chunked/i.test(head) ? body.split("\r\n")[1]! : body
      })
      socket.on("error", (error) => (seen.hungUp ??= error.message))
      socket.on("close", () => (seen.hungUp ??= "closed"))
      const lines = [
        `POST ${pathname} HTTP/1.1`,
        `host: ${hostname}:${port}`,
        "content-type: application/ndjson",
        `content-length: ${declaredBytes}`,
        ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)
      ]
      socket.write(`${lines.join("\r\n")}\r\n\r\n`)
      const chunk = Buffer.alloc(64 * 1024, "x")
      socket.write(chunk)
      seen.written = chunk.length
      /** Goes on sending the rest, as an attacker would, until the server stops taking it. */
      const sendTheRest = () => {
        while (seen.hungUp === undefined && seen.written < declaredBytes) {
          seen.written += chunk.length
          if (!socket.write(chunk)) return void socket.once("drain", sendTheRest)
        }
      }
      return { seen, sendTheRest, socket }
    }),
    ({ socket }) => Effect.sync(() => socket.destroy())
  )

layer(layerTestGateway({ WHATISUP_METRICS_TOKEN: metricsToken }), {
  timeout: 120_000,
  excludeTestServices: true
})("the admin listener refuses before it reads", (it) => {
  it.effect("300 MB posted to /rpc without the token: 401 while the body is still being sent", () =>
    Effect.gen(function* () {
      const { admin } = yield* TestGateway
      const declared = 300 * 1024 * 1024
      const { seen, sendTheRest } = yield* startHugePost(`${admin}/rpc`, declared)
      yield* waitUntil(
        "the admin listener answers before the body is sent",
        Effect.sync(() => seen.status !== undefined)
      )
      expect(seen.status).toBe(401)
      expect(JSON.parse(seen.body)).toMatchObject({ status: 401, code: "operator_unauthorized" })
      // and it hangs up rather than read the rest
      sendTheRest()
      yield* waitUntil(
        "the admin listener closes the connection or the whole body is sent",
        Effect.sync(() => seen.hungUp !== undefined || seen.written >= declared)
      )
      expect(seen.hungUp).toBeDefined()
      expect(seen.written).toBeLessThan(declared / 10)
    }).pipe(Effect.scoped)
  )

  it.effect("with the token, a body over the limit is refused with 413 before it is read", () =>
    Effect.gen(function* () {
      const { admin, adminToken } = yield* TestGateway
      const { seen } = yield* startHugePost(`${admin}/rpc`, 300 * 1024 * 1024, {
        authorization: `Bearer ${adminToken}`
      })
      yield* waitUntil(
        "the admin listener answers before the body is sent",
        Effect.sync(() => seen.status !== undefined)
      )
      expect(seen.status).toBe(413)
    }).pipe(Effect.scoped)
  )

  it.effect("with the token, a chunked body stops being read at the limit: 413", () =>
    Effect.gen(function* () {
      const { admin, adminToken } = yield* TestGateway
      const status = yield* Effect.promise(
        () =>
          new Promise<number | undefined>((resolve) => {
            const outgoing = http.request(`${admin}/rpc`, {
              method: "POST",
              headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/ndjson" }
            })
            outgoing.on("response", (response) => resolve(response.statusCode))
            outgoing.on("error", () => resolve(undefined))
            // no content-length: nothing says how large it is until it is read
            for (let i = 0; i < 32; i++) outgoing.write(Buffer.alloc(64 * 1024, "x"))
            outgoing.end()
          })
      )
      expect(status).toBe(413)
    })
  )

  it.effect("the token counts only in the Authorization header; a wrong one is refused like none", () =>
    Effect.gen(function* () {
      const { admin, adminToken } = yield* TestGateway
      const body = `${JSON.stringify({ _tag: "Request", id: "1", tag: "ListCustomers", payload: {}, headers: [] })}\n`
      const refusals = [
        yield* request(admin, "POST", "/rpc", { rawBody: body }),
        yield* request(admin, "POST", `/rpc?token=${adminToken}`, { rawBody: body }),
        yield* request(admin, "POST", "/rpc", { rawBody: body, headers: { "x-admin-token": adminToken } }),
        yield* request(admin, "POST", "/rpc", { rawBody: body, key: "wrong" }),
        yield* request(admin, "POST", "/rpc", { rawBody: body, key: metricsToken })
      ]
      for (const reply of refusals) {
        expect(reply.status).toBe(401)
        expect(reply.headers.get("www-authenticate")).toMatch(/^Bearer/)
      }
      const operator = yield* adminOf({ admin, adminToken })
      expect(Array.isArray(yield* operator.ListCustomers())).toBe(true)
    }).pipe(Effect.scoped)
  )

  it.effect("/metrics needs a token: the operator's or WHATISUP_METRICS_TOKEN", () =>
    Effect.gen(function* () {
      const { admin, adminToken } = yield* TestGateway
      expect((yield* request(admin, "GET", "/metrics")).status).toBe(401)
      expect((yield* request(admin, "GET", `/metrics?token=${metricsToken}`)).status).toBe(401)
      expect((yield* request(admin, "GET", "/metrics", { key: "x".repeat(40) })).status).toBe(401)
      for (const token of [adminToken, metricsToken]) {
        const reply = yield* request(admin, "GET", "/metrics", { key: token })
        expect(reply.status).toBe(200)
        expect(reply.text).toContain("whatisup_")
      }
    })
  )

  it.effect("/metrics shows the process: resident set, heap, CPU and the event loop's delay", () =>
    Effect.gen(function* () {
      const { admin, adminToken } = yield* TestGateway
      const { text } = yield* request(admin, "GET", "/metrics", { key: adminToken })
      const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1])
      expect(value("whatisup_process_resident_memory_bytes")).toBeGreaterThan(10 * 1024 * 1024)
      expect(value("whatisup_process_heap_used_bytes")).toBeGreaterThan(1024 * 1024)
      expect(value("whatisup_process_external_memory_bytes")).toBeGreaterThan(0)
      expect(value("whatisup_process_cpu_seconds_total")).toBeGreaterThan(0)
      for (const stat of ["p50", "p99", "max"]) {
        expect(value(`whatisup_event_loop_delay_seconds\\{stat="${stat}"\\}`)).toBeGreaterThanOrEqual(0)
      }
    })
  )
})
