import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import { adminOf, newCustomer } from "./support/admin.ts"
import { apiClient } from "./support/api.ts"
import { sqlFor, testDatabase } from "./support/database.ts"
import { gatewayEnvironment, startGateway } from "./support/gateway.ts"

const newKey = (id: string) => `${id}:${crypto.randomBytes(32).toString("base64")}`

describe("master key ring", () => {
  it.effect(
    "add a key, restart, rotate: secrets move to the newest key and the old key can then be dropped",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const sql = yield* sqlFor(database.url)
        const k1 = newKey("k1")
        const k2 = newKey("k2")
        const canary = () =>
          Effect.map(
            sql<{ ciphertext: string }>`SELECT ciphertext FROM key_ring_canary`,
            (rows) => rows[0]!.ciphertext
          )

        const customerKey = yield* Effect.scoped(
          Effect.gen(function* () {
            const gateway = yield* startGateway(
              yield* gatewayEnvironment(database.url, { WHATISUP_MASTER_KEYS: k1 })
            )
            return (yield* newCustomer(gateway, { name: "Rotating" })).key
          })
        )
        expect(yield* canary()).toMatch(/^v2\.k1\./)

        yield* Effect.scoped(
          Effect.gen(function* () {
            const gateway = yield* startGateway(
              yield* gatewayEnvironment(database.url, { WHATISUP_MASTER_KEYS: `${k1},${k2}` })
            )
            const admin = yield* adminOf(gateway)
            const result = yield* admin.RotateMasterKey()
            expect(result.key_id).toBe("k2")
            expect(result.stores).toContainEqual({ store: "key_ring_canary.ciphertext", rewritten: 1 })
            const again = yield* admin.RotateMasterKey()
            expect(again.stores).toContainEqual({ store: "key_ring_canary.ciphertext", rewritten: 0 })
          })
        )
        expect(yield* canary()).toMatch(/^v2\.k2\./)
        const audited = yield* sql<{ action: string; actor_type: string; resource_id: string }>`
          SELECT action, actor_type, resource_id FROM audit_events WHERE action = 'master_key.rotated'`
        expect(audited).toEqual([
          { action: "master_key.rotated", actor_type: "operator", resource_id: "k2" },
          { action: "master_key.rotated", actor_type: "operator", resource_id: "k2" }
        ])
        expect(JSON.stringify(audited)).not.toContain(k2.split(":")[1])

        yield* Effect.scoped(
          Effect.gen(function* () {
            const gateway = yield* startGateway(
              yield* gatewayEnvironment(database.url, { WHATISUP_MASTER_KEYS: k2 })
            )
            const client = yield* apiClient(gateway.api, customerKey)
            expect((yield* client.me.get({})).customer.name).toBe("Rotating")
          })
        )

        const refused = yield* Effect.scoped(
          Effect.gen(function* () {
            return yield* startGateway(yield* gatewayEnvironment(database.url, { WHATISUP_MASTER_KEYS: k1 }))
          })
        ).pipe(Effect.flip)
        expect(refused._tag).toBe("ConfigInvalid")
        expect(refused.message).toMatch(
          /^WHATISUP_MASTER_KEYS: cannot decrypt a secret written under master key "k2"/
        )
      }).pipe(Effect.scoped),
    120_000
  )
})
