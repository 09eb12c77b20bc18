import { expect, layer } from "@effect/vitest"
import { maxJsonBodyBytes } from "@whatisup/domain"
import { Effect } from "effect"
import * as http from "node:http"
import * as net from "node:net"
import { newCustomer } from "./support/admin.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { type Reply, request } from "./support/http.ts"

/** Everything here is what a typed client would refuse to send, so requests are raw, as curl sends them. */
const customerKey = Effect.gen(function* () {
  return (yield* newCustomer(yield* TestGateway, { name: "Bad Input Co" })).key
})

const expectProblem = (reply: Reply, status: number, code: string) => {
  expect(reply.status).toBe(status)
  expect(reply.headers.get("content-type")).toBe("application/problem+json")
  expect(reply.body.code).toBe(code)
  expect(reply.body.status).toBe(status)
  expect(typeof reply.body.title).toBe("string")
}

/** Posts a JSON body with no Content-Length (chunked transfer), 64 KiB at a time. */
const postChunked = (api: string, path: string, key: string, body: string) =>
  Effect.promise(
    () =>
      new Promise<{ status: number; contentType: string | undefined; body: string }>((resolve, reject) => {
        const url = new URL(`${api}${path}`)
        const req = http.request(
          {
            host: url.hostname,
            port: url.port,
            path: url.pathname,
            method: "POST",
            headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }
          },
          (res) => {
            let text = ""
            res.on("data", (chunk) => (text += chunk))
            res.on("end", () =>
              resolve({ status: res.statusCode ?? 0, contentType: res.headers["content-type"], body: text })
            )
          }
        )
        req.on("error", reject)
        for (let i = 0; i < body.length; i += 65536) req.write(body.slice(i, i + 65536))
        req.end()
      })
  )

/** Writes bytes to the listener as they are and reads what comes back until the gateway closes. */
const sendBytes = (api: string, bytes: string) =>
  Effect.promise(
    () =>
      new Promise<string>((resolve, reject) => {
        const url = new URL(api)
        const socket = net.connect(Number(url.port), url.hostname, () => socket.write(bytes))
        let answer = ""
        socket.setEncoding("utf8")
        socket.on("data", (chunk: string) => (answer += chunk))
        socket.on("close", () => resolve(answer))
        socket.on("error", reject)
      })
  )

const paths = (reply: Reply) => (reply.body.errors as Array<{ path: string }>).map((e) => e.path).sort()

layer(layerTestGateway(), { timeout: 120_000, excludeTestServices: true })(
  "bad input is a 4xx problem that names the field",
  (it) => {
    it.effect("malformed JSON", () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const key = yield* customerKey
        const reply = yield* request(api, "POST", "/v1/api-keys", {
          key,
          rawBody: '{"name": ',
          headers: { "content-type": "application/json" }
        })
        expectProblem(reply, 400, "invalid_request")
        expect(reply.body.errors[0].path).toBe("body")
        expect(reply.body.errors[0].message).toMatch(/JSON/)
      })
    )

    it.effect("a request line and headers beyond 16 KiB: a 431 problem, not a bare status line", () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const key = yield* customerKey
        const reply = yield* request(api, "GET", `/v1/channels?cursor=${"a".repeat(20_000)}`, { key })
        expectProblem(reply, 431, "request_header_fields_too_large")
      })
    )

    it.effect("bytes that are not HTTP: a 400 problem", () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const answer = yield* sendBytes(
          api,
          "GET /v1/me HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
        )
        const [head, body] = answer.split("\r\n\r\n")
        expect(head).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/)
        expect(head).toContain("content-type: application/problem+json")
        expect(JSON.parse(body!)).toMatchObject({ status: 400, code: "malformed_request" })
      })
    )

    it.effect("a wrong content type", () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const key = yield* customerKey
        const reply = yield* request(api, "POST", "/v1/api-keys", {
          key,
          rawBody: "name=x",
          headers: { "content-type": "text/plain" }
        })
        expectProblem(reply, 400, "invalid_content_type")
      })
    )

    it.effect("wrong types and unknown fields, every one named", () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const { key, client } = yield* newCustomer(yield* TestGateway, { name: "Bad Input Co" })
        const reply = yield* request(api, "POST", "/v1/api-keys", { key, body: { name: 42, colour: "red" } })
        expectProblem(reply, 400, "invalid_request")
        expect(reply.body.errors).toEqual([
          { path: "body.colour", message: "is not a known field" },
          { path: "body.name", message: "Expected string, got 42" }
        ])
        expect((yield* client.apiKeys.list({ query: {} })).data).toHaveLength(1)
      })
    )

    it.effect(
      "thousands of unknown fields: a 400 listing 20 of them and counting the rest, smaller than the request",
      () =>
        Effect.gen(function* () {
          const { api } = yield* TestGateway
          const key = yield* customerKey
          // as many as fit in the largest JSON body taken
          const rawBody = JSON.stringify({
            ...Object.fromEntries(Array.from({ length: 5_000 }, (_, i) => [`f${i}`, 0])),
            name: 42
          })
          expect(rawBody.length).toBeGreaterThan(32 * 1024)
          expect(rawBody.length).toBeLessThan(maxJsonBodyBytes)
          const reply = yield* request(api, "POST", "/v1/api-keys", {
            key,
            rawBody,
            headers: { "content-type": "application/json" }
          })
          expectProblem(reply, 400, "invalid_request")
          expect(reply.body.errors).toHaveLength(20)
          expect(reply.body.errors[0]).toEqual({ path: "body.f0", message: "is not a known field" })
          // validation stopped at the unknown fields: the wrong name was not even looked at
          expect(reply.body.errors_omitted).toBe(5_000 - 20)
          expect(reply.text.length).toBeLessThan(rawBody.length)
          expect(reply.text.length).toBeLessThan(4096)

          // the same without a Content-Length (chunked): its size is known only once it is read
          const chunked = yield* postChunked(api, "/v1/api-keys", key, rawBody)
          expect(chunked.status).toBe(400)
          expect(JSON.parse(chunked.body).errors_omitted).toBe(5_000 - 20)

          // checked after authentication: without a key the body is not looked at
          const anonymous = yield* request(api, "POST", "/v1/api-keys", {
            rawBody,
            headers: { "content-type": "application/json" }
          })
          expectProblem(anonymous, 401, "missing_api_key")
        })
    )

    it.effect("a small body or a query with many errors: 20 listed, the rest counted, long names cut", () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const key = yield* customerKey
        const fields = Object.fromEntries(Array.from({ length: 25 }, (_, i) => [`colour${i}`, "red"]))
        const body = yield* request(api, "POST", "/v1/api-keys", {
          key,
          body: { ...fields, ["x".repeat(5_000)]: 1, name: 42 }
        })
        expectProblem(body, 400, "invalid_request")
        expect(body.body.errors).toHaveLength(20)
        expect(body.body.errors_omitted).toBe(25 + 1 + 1 - 20)

        const longName = yield* request(api, "POST", "/v1/api-keys", {
          key,
          body: { ["x".repeat(5_000)]: 1 }
        })
        expectProblem(longName, 400, "invalid_request")
        expect(longName.body.errors).toHaveLength(1)
        expect(longName.body.errors[0].path.length).toBeLessThanOrEqual(200)
        expect(longName.body.errors_omitted).toBeUndefined()

        const params = Array.from({ length: 100 }, (_, i) => `p${i}=1`).join("&")
        const query = yield* request(api, "GET", `/v1/api-keys?${params}`, { key })
        expectProblem(query, 400, "invalid_request")
        expect(query.body.errors).toHaveLength(20)
        expect(query.body.errors_omitted).toBe(80)
      })
    )

    it.effect("a body that is not an object", () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const key = yield* customerKey
        for (const rawBody of ["[]", "null", '"x"', "12"]) {
          const reply = yield* request(api, "POST", "/v1/api-keys", {
            key,
            rawBody,
            headers: { "content-type": "application/json" }
          })
          expectProblem(reply, 400, "invalid_request")
        }
      })
    )

    it.effect("empty, over-long, NUL, control characters, bidi overrides and broken Unicode in a name", () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const key = yield* customerKey
        for (const name of [
          "",
          "x".repeat(101),
          "a\u0000b",
          "bell\u0007",
          "next\u0085line",
          "invoice\u202efdp.exe",
          "isolated \u2067text\u2069",
          "lone \ud800 surrogate"
        ]) {
          const reply = yield* request(api, "POST", "/v1/api-keys", { key, body: { name } })
          expectProblem(reply, 400, "invalid_request")
          expect(paths(reply)).toEqual(["body.name"])
        }
      })
    )

    it.effect("an oversized body is 413, whether announced or streamed", () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const key = yield* customerKey
        const big = JSON.stringify({ name: "x".repeat(2 * 1024 * 1024) })
        const announced = yield* request(api, "POST", "/v1/api-keys", {
          key,
          rawBody: big,
          headers: { "content-type": "application/json" }
        })
        expectProblem(announced, 413, "payload_too_large")

        const streamed = yield* postChunked(api, "/v1/api-keys", key, big)
        expect(streamed.status).toBe(413)
        expect(streamed.contentType).toBe("application/problem+json")
        expect(JSON.parse(streamed.body).code).toBe("payload_too_large")
      })
    )

    it.effect(
      "a JSON body over 64 KiB is 413 naming the limit, refused before it is read, announced or streamed; one just under is decoded",
      () =>
        Effect.gen(function* () {
          const { api } = yield* TestGateway
          const key = yield* customerKey
          /** A body of exactly `bytes` bytes whose name is far too long. */
          const nameOf = (bytes: number) => JSON.stringify({ name: "x".repeat(bytes - '{"name":""}'.length) })
          const headers = { "content-type": "application/json" }

          const under = yield* request(api, "POST", "/v1/api-keys", {
            key,
            rawBody: nameOf(maxJsonBodyBytes),
            headers
          })
          expectProblem(under, 400, "invalid_request")
          expect(paths(under)).toEqual(["body.name"])

          for (const path of ["/v1/api-keys", "/v1/channels", `/v1/channels/ch_${"0".repeat(26)}/connect`]) {
            const over = yield* request(api, "POST", path, {
              key,
              rawBody: nameOf(maxJsonBodyBytes + 1),
              headers
            })
            expectProblem(over, 413, "payload_too_large")
            expect(over.body.max_bytes).toBe(maxJsonBodyBytes)
            expect(over.body.detail).toBe("Bodies are limited to 64 KiB here")
          }
          // refused from its Content-Length, before the key is even looked at
          const anonymous = yield* request(api, "POST", "/v1/api-keys", {
            rawBody: nameOf(maxJsonBodyBytes + 1),
            headers
          })
          expectProblem(anonymous, 413, "payload_too_large")

          const streamed = yield* postChunked(api, "/v1/channels", key, nameOf(maxJsonBodyBytes + 1))
          expect(streamed.status).toBe(413)
          expect(streamed.contentType).toBe("application/problem+json")
          expect(JSON.parse(streamed.body)).toMatchObject({
            code: "payload_too_large",
            max_bytes: maxJsonBodyBytes
          })
        })
    )

    it.effect("bad ids in the path", () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const key = yield* customerKey
        for (const id of [
          "nope",
          "key_short",
          "cus_01m8ahr742skbetar1crg621tp",
          "key_01M8AHR742SKBETAR1CRG621TP"
        ]) {
          const reply = yield* request(api, "DELETE", `/v1/api-keys/${id}`, { key })
          expectProblem(reply, 400, "invalid_request")
          expect(paths(reply)).toEqual(["path.id"])
        }
        const unknown = yield* request(api, "DELETE", "/v1/api-keys/key_01m8ahr742skbetar1crg621tp", { key })
        expectProblem(unknown, 404, "not_found")
      })
    )

    it.effect("bad cursors, limits and unknown query parameters", () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const key = yield* customerKey
        const cases: Array<[string, string]> = [
          ["/v1/api-keys?cursor=%%%", "query.cursor"],
          ["/v1/api-keys?cursor=bm90LWFuLWlk", "query.cursor"],
          ["/v1/audit-events?cursor=a2V5XzAxbThhaHI3NDJza2JldGFyMWNyZzYyMXRw", "query.cursor"],
          ["/v1/api-keys?limit=0", "query.limit"],
          ["/v1/api-keys?limit=101", "query.limit"],
          ["/v1/api-keys?limit=ten", "query.limit"],
          ["/v1/api-keys?limit=1.5", "query.limit"],
          ["/v1/api-keys?limit=1e1", "query.limit"],
          ["/v1/api-keys?limit=0x10", "query.limit"],
          ["/v1/api-keys?limit=%205", "query.limit"],
          ["/v1/api-keys?limit=5&limit=6", "query.limit"],
          ["/v1/api-keys?colour=red", "query.colour"],
          ["/v1/audit-events?resource_type=DROP%20TABLE", "query.resource_type"]
        ]
        for (const [path, field] of cases) {
          const reply = yield* request(api, "GET", path, { key })
          expectProblem(reply, 400, "invalid_request")
          expect(paths(reply), path).toEqual([field])
          expect(reply.body.detail, path).toMatch(
            /^The (request has invalid fields|cursor was not handed out)/
          )
        }
      })
    )

    it.effect("bad Idempotency-Key headers", () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const key = yield* customerKey
        const reply = yield* request(api, "POST", "/v1/api-keys", {
          key,
          body: {},
          headers: { "idempotency-key": "x".repeat(300) }
        })
        expectProblem(reply, 400, "invalid_request")
        expect(paths(reply)).toEqual(["header.idempotency-key"])
      })
    )

    it.effect("missing, malformed and unknown keys are 401", () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        expectProblem(yield* request(api, "GET", "/v1/me"), 401, "missing_api_key")
        expectProblem(yield* request(api, "GET", "/v1/me", { key: "nope" }), 401, "malformed_api_key")
        expectProblem(
          yield* request(api, "GET", "/v1/me", { headers: { authorization: "Basic dXNlcjpwYXNz" } }),
          401,
          "missing_api_key"
        )
        expectProblem(
          yield* request(api, "GET", "/v1/me", { key: `wiu_${"A".repeat(43)}` }),
          401,
          "invalid_api_key"
        )
      })
    )

    it.effect(
      "an unknown route is a 404; a method a known path does not take is a 405 naming those it does",
      () =>
        Effect.gen(function* () {
          const { api } = yield* TestGateway
          const key = yield* customerKey
          expectProblem(yield* request(api, "GET", "/v1/nothing-here", { key }), 404, "route_not_found")
          const cases: Array<[string, string, string]> = [
            ["DELETE", "/v1/me", "GET"],
            ["PUT", "/v1/me", "GET"],
            ["PATCH", "/v1/api-keys", "POST, GET"],
            ["POST", "/v1/channels/ch_01m8ahr742skbetar1crg621tp", "GET, PATCH, DELETE"],
            ["GET", "/v1/channels/ch_01m8ahr742skbetar1crg621tp/connect", "POST"],
            ["POST", "/docs", "GET"]
          ]
          for (const [method, path, allow] of cases) {
            const reply = yield* request(api, method, path, { key })
            expectProblem(reply, 405, "method_not_allowed")
            expect(reply.headers.get("allow"), `${method} ${path}`).toBe(allow)
            expect(reply.body.detail).toBe(`${path} takes ${allow}, not ${method}`)
          }
          // a route that exists answers its own 404s
          expectProblem(
            yield* request(api, "GET", "/v1/channels/ch_01m8ahr742skbetar1crg621tp", { key }),
            404,
            "not_found"
          )
        })
    )
  }
)
