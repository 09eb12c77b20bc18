import { expect } from "@effect/vitest"
import { Effect } from "effect"
import { request } from "../support/http.ts"
import type { IsolationFixture } from "./fixture.ts"

const ownKey = (owner: Parameters<IsolationFixture>[0]) =>
  Effect.map(
    request(owner.api, "POST", "/v1/api-keys", { key: owner.key, body: { name: "owned" } }),
    (reply) => {
      expect(reply.status).toBe(201)
      return reply.body as { id: string; key: string }
    }
  )

export const tenancyFixtures: Record<string, IsolationFixture> = {
  "GET /v1/me": (owner) => Effect.succeed({ ownedIds: [owner.customerId, owner.keyId] }),
  "GET /v1/api-keys": (owner) => Effect.map(ownKey(owner), (key) => ({ ownedIds: [owner.keyId, key.id] })),
  "POST /v1/api-keys": (owner) => Effect.succeed({ body: { name: "mine" }, ownedIds: [owner.keyId] }),
  "DELETE /v1/api-keys/{id}": (owner) =>
    Effect.map(ownKey(owner), (key) => ({
      params: { id: key.id },
      ownedIds: [key.id],
      stillIntact: Effect.map(request(owner.api, "GET", "/v1/me", { key: key.key }), (reply) =>
        expect(reply.status, "the owner's key still works").toBe(200)
      )
    }))
}
