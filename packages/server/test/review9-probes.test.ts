/**
 * Review of issue 9 (trust under a hostile tenant): probes that show what a hostile tenant can
 * still do. Each asserts what the issue asks for, so each fails while the hole is open (all four
 * fail on main at 3ef0903).
 */
import { expect, layer } from "@effect/vitest"
import type { ChannelId } from "@whatisup/domain"
import { Effect } from "effect"
import { newCustomer } from "./support/admin.ts"
import { sqlFor, testDatabase } from "./support/database.ts"
import { gatewayEnvironment, layerTestGateway, TestGateway } from "./support/gateway.ts"
import { spawnGateway, waitReady } from "./support/process.ts"
import { pause, waitUntil } from "./support/waits.ts"

layer(layerTestGateway(), { timeout: 120_000, excludeTestServices: true })("review of issue 9", (it) => {
  it.effect(
    "item 4: creating, connecting and deleting channels in a loop does not open more WhatsApp connections than pacing allows one channel",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { whatsapp } = gateway
        const { client } = yield* newCustomer(gateway, { name: "Churner", plan: { max_channels: 1 } })
        const started = performance.now()
        const ids: Array<ChannelId> = []
        for (let i = 0; i < 20; i++) {
          const { id } = yield* client.channels.create({ headers: {}, payload: {} })
          ids.push(id)
          yield* client.channels.connect({ params: { id }, payload: { method: "qr" } })
          yield* waitUntil(
            "the connection is open",
            Effect.sync(() => whatsapp.isOpen(id))
          )
          yield* client.channels.delete({ params: { id } })
        }
        const seconds = (performance.now() - started) / 1000
        const connects = ids.reduce((sum, id) => sum + whatsapp.connects(id), 0)
        console.log(
          `item 4 probe: ${connects} WhatsApp connections in ${seconds.toFixed(1)} s from one customer with max_channels 1`
        )
        expect(connects).toBeLessThanOrEqual(6)
      })
  )
  it.effect(
    "item 1: within its plan's rate, a tenant posting large bodies of unknown fields does not slow another tenant",
    () =>
      Effect.gen(function* () {
        // a gateway process of its own, so that the load on this test's event loop does not count
        const env = yield* gatewayEnvironment(yield* testDatabase)
        const api = `http://127.0.0.1:${env.PORT}`
        const gateway = yield* spawnGateway(env)
        yield* waitReady(gateway, api)
        const endpoint = {
          api,
          admin: `http://${env.WHATISUP_ADMIN_LISTEN}`,
          adminToken: env.WHATISUP_ADMIN_TOKEN
        }
        // the default plan: 50 requests a second
        const attacker = yield* newCustomer(endpoint, {
          name: "Heavy",
          plan: { api_requests_per_second: 50 }
        })
        const bystander = yield* newCustomer(endpoint, { name: "Bystander" })
        const manyFields = JSON.stringify(
          Object.fromEntries(Array.from({ length: 90_000 }, (_, i) => [`f${i}`, 0]))
        )
        const oneString = JSON.stringify({ name: "x".repeat(manyFields.length - 11) })
        const underAttack = (body: string) =>
          Effect.promise(async () => {
            const attacks: Array<Promise<number>> = []
            const started = Date.now()
            const timer = setInterval(() => {
              if (Date.now() - started > 4_000) return clearInterval(timer)
              attacks.push(
                fetch(`${api}/v1/api-keys`, {
                  method: "POST",
                  headers: { authorization: `Bearer ${attacker.key}`, "content-type": "application/json" },
                  body
                }).then(async (response) => (await response.text(), response.status))
              )
            }, 1000 / 40)
            const latencies: Array<number> = []
            while (Date.now() - started < 4_000) {
              const sent = performance.now()
              await fetch(`${api}/v1/me`, { headers: { authorization: `Bearer ${bystander.key}` } }).then(
                (response) => response.text()
              )
              latencies.push(performance.now() - sent)
            }
            const statuses = await Promise.all(attacks)
            return {
              attacks: statuses.length,
              refused: statuses.filter((status) => status === 400).length,
              bystanderRequests: latencies.length,
              bystanderMaxMillis: Math.round(Math.max(...latencies))
            }
          })
        const control = yield* underAttack(oneString)
        const attack = yield* underAttack(manyFields)
        console.log("item 1 probe, 40 bodies of 1 MiB a second for 4 s:", { control, attack })
        expect(attack.bystanderMaxMillis).toBeLessThan(500)
      }).pipe(Effect.scoped),
    120_000
  )

  it.effect(
    "item 3: one tenant revoking an already revoked key does not empty the key cache for every tenant",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const owner = yield* sqlFor(gateway.databaseUrl)
        const attacker = yield* newCustomer(gateway, { name: "Forgetter" })
        const bystander = yield* newCustomer(gateway, { name: "Bystander" })
        const spare = yield* attacker.client.apiKeys.create({ headers: {}, payload: {} })
        yield* attacker.client.apiKeys.revoke({ params: { id: spare.id } })
        /** Lookups of api_keys by hash (each an authentication that missed the cache) while `during` runs 100 bystander requests. */
        const lookups = (during: Effect.Effect<void, unknown>) =>
          Effect.gen(function* () {
            const read = owner<{ n: number }>`
            SELECT coalesce(idx_scan, 0)::int AS n
            FROM pg_stat_user_indexes WHERE indexrelname = 'api_keys_key_hash_key'`
            yield* owner`SELECT pg_stat_clear_snapshot()`
            yield* pause(11_000)
            yield* owner`SELECT pg_stat_clear_snapshot()`
            const before = (yield* read)[0]!.n
            for (let i = 0; i < 100; i++) {
              yield* during
              yield* bystander.client.me.get({})
            }
            yield* pause(11_000)
            yield* owner`SELECT pg_stat_clear_snapshot()`
            return (yield* read)[0]!.n - before
          })
        yield* bystander.client.me.get({})
        const quiet = yield* lookups(Effect.void)
        const revoking = yield* lookups(
          Effect.asVoid(attacker.client.apiKeys.revoke({ params: { id: spare.id } }))
        )
        console.log("item 3 probe: keys looked up by hash in the database, 100 bystander requests:", {
          quiet,
          revoking
        })
        // the attacker's own key may be read again; the bystander's should stay cached
        expect(revoking).toBeLessThanOrEqual(quiet + 100)
      }).pipe(Effect.scoped)
  )
})
