import { Effect } from "effect"
import type { IsolationFixture } from "./fixture.ts"

export const auditFixtures: Record<string, IsolationFixture> = {
  "GET /v1/audit-events": (owner) =>
    Effect.map(owner.client.apiKeys.create({ headers: {}, payload: {} }), (key) => ({
      ownedIds: [owner.customerId, owner.keyId, key.id]
    }))
}
