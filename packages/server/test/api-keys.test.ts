import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { AdminClient, layerTestAdmin, layerTestGateway, TestGateway } from "./support/gateway.ts"
import { request } from "./support/http.ts"

const layerUnderTest = layerTestAdmin.pipe(Layer.provideMerge(layerTestGateway()))

const newCustomer = (name: string) =>
  Effect.gen(function* () {
    const admin = yield* AdminClient
    return yield* admin.CreateCustomer({ name })
  })

layer(layerUnderTest, { timeout: 120_000 })("API keys", (it) => {
  it.effect(
    "a new key is answered once with its plaintext, and lists show only its prefix and last four",
    () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const { api_key } = yield* newCustomer("Keys Ltd")
        const created = yield* request(api, "POST", "/v1/api-keys", {
          key: api_key.key,
          body: { name: "ci" }
        })
        expect(created.status).toBe(201)
        expect(created.body.key).toMatch(/^wiu_[A-Za-z0-9_-]{43}$/)
        expect(created.body.name).toBe("ci")
        expect(created.body.prefix).toBe(created.body.key.slice(0, 8))
        expect(created.body.last_four).toBe(created.body.key.slice(-4))

        const list = yield* request(api, "GET", "/v1/api-keys", { key: api_key.key })
        expect(list.status).toBe(200)
        expect(list.body.data.map((k: { id: string }) => k.id)).toContain(created.body.id)
        expect(list.text).not.toContain(created.body.key)
        expect(list.text).not.toContain(api_key.key)

        const me = yield* request(api, "GET", "/v1/me", { key: created.body.key })
        expect(me.status).toBe(200)
        expect(me.body.key_id).toBe(created.body.id)
      })
  )

  it.effect("a revoked key is refused at once", () =>
    Effect.gen(function* () {
      const { api } = yield* TestGateway
      const { api_key } = yield* newCustomer("Revokers")
      const second = yield* request(api, "POST", "/v1/api-keys", { key: api_key.key, body: {} })
      expect((yield* request(api, "GET", "/v1/me", { key: second.body.key })).status).toBe(200)
      const revoked = yield* request(api, "DELETE", `/v1/api-keys/${second.body.id}`, { key: api_key.key })
      expect(revoked.status).toBe(200)
      expect(revoked.body.revoked_at).not.toBeNull()
      const after = yield* request(api, "GET", "/v1/me", { key: second.body.key })
      expect(after.status).toBe(401)
      expect(after.headers.get("content-type")).toBe("application/problem+json")
      expect(after.body.code).toBe("invalid_api_key")
    })
  )
})
