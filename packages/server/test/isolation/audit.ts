import { Effect } from "effect"
import { request } from "../support/http.ts"
import type { IsolationFixture } from "./fixture.ts"

export const auditFixtures: Record<string, IsolationFixture> = {
  "GET /v1/audit-events": (owner) =>
    Effect.map(request(owner.api, "POST", "/v1/api-keys", { key: owner.key, body: {} }), (reply) => ({
      ownedIds: [owner.customerId, owner.keyId, reply.body.id]
    }))
}
