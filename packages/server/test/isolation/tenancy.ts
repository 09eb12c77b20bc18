import { expect } from "@effect/vitest"
import { Effect } from "effect"
import { apiClient } from "../support/api.ts"
import type { IsolationFixture, Owner } from "./fixture.ts"

const ownKey = (owner: Owner) => owner.client.apiKeys.create({ headers: {}, payload: { name: "owned" } })

export const tenancyFixtures: Record<string, IsolationFixture> = {
  "GET /v1/me": (owner) => Effect.succeed({ ownedIds: [owner.customerId, owner.keyId] }),
  "GET /v1/api-keys": (owner) => Effect.map(ownKey(owner), (key) => ({ ownedIds: [owner.keyId, key.id] })),
  "POST /v1/api-keys": (owner) => Effect.succeed({ body: { name: "mine" }, ownedIds: [owner.keyId] }),
  "DELETE /v1/api-keys/{id}": (owner) =>
    Effect.map(ownKey(owner), (key) => ({
      params: { id: key.id },
      ownedIds: [key.id],
      stillIntact: Effect.gen(function* () {
        const me = yield* (yield* apiClient(owner.api, key.key)).me.get({})
        expect(me.key_id, "the owner's key still works").toBe(key.id)
      })
    }))
}
