import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import { isolationFixtures } from "./isolation/fixtures.ts"
import { newCustomer } from "./support/admin.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { request } from "./support/http.ts"

interface Operation {
  readonly method: string
  readonly path: string
  readonly route: string
}

const customerScopedOperations = (api: string) =>
  Effect.map(request(api, "GET", "/openapi.json"), (reply) => {
    const operations: Array<Operation> = []
    for (const [path, methods] of Object.entries(reply.body.paths as Record<string, Record<string, any>>)) {
      for (const [method, operation] of Object.entries(methods)) {
        if (Array.isArray(operation.security) && operation.security.length > 0) {
          operations.push({ method: method.toUpperCase(), path, route: `${method.toUpperCase()} ${path}` })
        }
      }
    }
    return operations
  })

const fill = (path: string, params: Record<string, string>) =>
  path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = params[name]
    if (value === undefined) throw new Error(`the fixture gave no value for {${name}} in ${path}`)
    return value
  })

/** An id of the same kind that exists nowhere. */
const unknownLike = (id: string) =>
  `${id.slice(0, id.indexOf("_") + 1)}${Array.from(crypto.randomBytes(26), (b) => "0123456789abcdefghjkmnpqrstvwxyz"[b % 32]).join("")}`

layer(layerTestGateway({ WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32" }), {
  timeout: 120_000,
  excludeTestServices: true
})("cross-customer isolation, from the OpenAPI document", (it) => {
  it.effect("every customer-scoped route has an isolation fixture", () =>
    Effect.gen(function* () {
      const { api } = yield* TestGateway
      const operations = yield* customerScopedOperations(api)
      expect(operations.length).toBeGreaterThan(3)
      const missing = operations.map((op) => op.route).filter((route) => !(route in isolationFixtures))
      expect(missing, "routes without an isolation fixture").toEqual([])
    })
  )

  it.effect("another customer's ids answer exactly like unknown ids, and lists never show them", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const { api } = gateway
      const operations = yield* customerScopedOperations(api)
      let checked = 0
      for (const operation of operations) {
        const fixture = isolationFixtures[operation.route]
        if (fixture === undefined) continue
        const { key, keyId, customerId, client } = yield* newCustomer(gateway, {
          name: `Owner of ${operation.route}`
        })
        const intruder = (yield* newCustomer(gateway, { name: `Intruder on ${operation.route}` })).key
        const owner = { api, key, keyId, customerId, client }
        const setup = yield* fixture(owner)
        const params = setup.params ?? {}
        const body = setup.body === undefined ? {} : { body: setup.body }
        // the routes come from the OpenAPI document, not from the typed client: raw requests, as curl sends them
        if (setup.intrude !== undefined) {
          yield* setup.intrude({ api, key: intruder }).pipe(Effect.scoped)
        } else if (Object.keys(params).length > 0) {
          const theirs = yield* request(api, operation.method, fill(operation.path, params), {
            key: intruder,
            ...body
          })
          const unknownParams = Object.fromEntries(
            Object.entries(params).map(([k, v]) => [k, unknownLike(v)])
          )
          const unknown = yield* request(api, operation.method, fill(operation.path, unknownParams), {
            key: intruder,
            ...body
          })
          expect(theirs.status, operation.route).toBe(404)
          expect(theirs.headers.get("content-type"), operation.route).toBe("application/problem+json")
          expect(
            { status: theirs.status, code: theirs.body.code, title: theirs.body.title },
            operation.route
          ).toEqual({
            status: unknown.status,
            code: unknown.body.code,
            title: unknown.body.title
          })
          for (const id of Object.values(params)) expect(theirs.text, operation.route).not.toContain(id)
        } else {
          const theirs = yield* request(api, operation.method, operation.path, { key: intruder, ...body })
          expect(theirs.status, operation.route).toBeLessThan(300)
          for (const id of setup.ownedIds)
            expect(theirs.text, `${operation.route} leaks ${id}`).not.toContain(id)
        }
        if (setup.stillIntact) yield* setup.stillIntact
        checked++
      }
      expect(checked).toBe(operations.length)
    })
  )
})
