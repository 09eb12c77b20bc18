import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { adminOf, newCustomer } from "./support/admin.ts"
import { apiClient, waitForQr, waitForStatus } from "./support/api.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { waitUntil } from "./support/waits.ts"

layer(layerTestGateway(), { timeout: 120_000, excludeTestServices: true })(
  "suspension and deletion reach everything",
  (it) => {
    it.effect(
      "suspending a customer stops its channels, visibly; resuming connects them again without a new pairing",
      () =>
        Effect.gen(function* () {
          const gateway = yield* TestGateway
          const { whatsapp } = gateway
          const admin = yield* adminOf(gateway)
          const { customerId, client } = yield* newCustomer(gateway, { name: "Suspended Ltd" })
          const other = yield* newCustomer(gateway, { name: "Bystander" })
          const connected = yield* client.channels.create({ headers: {}, payload: { name: "connected" } })
          const pairing = yield* client.channels.create({ headers: {}, payload: { name: "pairing" } })
          const idle = yield* client.channels.create({ headers: {}, payload: { name: "idle" } })
          const bystander = yield* other.client.channels.create({ headers: {}, payload: {} })
          for (const id of [connected.id, pairing.id]) {
            yield* client.channels.connect({ params: { id }, payload: { method: "qr" } })
          }
          yield* other.client.channels.connect({ params: { id: bystander.id }, payload: { method: "qr" } })
          yield* waitForQr(client, connected.id)
          yield* whatsapp.pair(connected.id, "+15557770001")
          yield* waitForStatus(client, connected.id, "connected")
          yield* waitForQr(client, pairing.id)
          yield* waitForQr(other.client, bystander.id)
          const connects = whatsapp.connects(connected.id)

          yield* admin.SuspendCustomer({ id: customerId })
          yield* waitUntil(
            "the suspended customer's connections are closed",
            Effect.sync(() => !whatsapp.isOpen(connected.id) && !whatsapp.isOpen(pairing.id))
          )
          const seen = new Map(
            (yield* admin.ListChannels({ customer_id: customerId })).map((c) => [
              c.id,
              [c.status, c.status_reason]
            ])
          )
          expect(seen.get(connected.id)).toEqual(["suspended", "customer_suspended"])
          // a pairing cannot be taken up again later: it rests until its customer connects again
          expect(seen.get(pairing.id)).toEqual(["created", "customer_suspended"])
          expect(seen.get(idle.id)).toEqual(["created", null])
          expect(whatsapp.isOpen(bystander.id)).toBe(true)
          expect(whatsapp.logouts(connected.id)).toBe(0)

          yield* admin.ResumeCustomer({ id: customerId })
          const back = yield* waitForStatus(client, connected.id, "connected")
          expect(back).toMatchObject({ status_reason: null, phone_number: "+15557770001" })
          expect(whatsapp.connects(connected.id)).toBe(connects + 1)
          expect((yield* client.channels.get({ params: { id: pairing.id } })).status).toBe("created")
          expect(whatsapp.isOpen(pairing.id)).toBe(false)

          const audit = yield* client.audit.list({
            query: { resource_type: "channel", resource_id: connected.id }
          })
          const byOperator = audit.data.filter((e) => e.actor.type === "operator")
          expect(byOperator.map((e) => [e.action, e.data])).toEqual([
            ["channel.resumed", {}],
            ["channel.suspended", { previous_status: "connected", status: "suspended" }]
          ])
          const events = yield* client.events.list({
            query: { channel_id: connected.id, type: "channel.disconnected" }
          })
          expect(events.data.map((e) => e.data.reason)).toContain("customer_suspended")
        })
    )

    it.effect("deleting a channel revokes the keys bound to it, each audited; other keys live on", () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const { client, keyId } = yield* newCustomer(yield* TestGateway, { name: "Deleter" })
        const doomed = yield* client.channels.create({ headers: {}, payload: {} })
        const kept = yield* client.channels.create({ headers: {}, payload: {} })
        const boundToDoomed = yield* client.apiKeys.create({
          headers: {},
          payload: { name: "doomed bot", channel_id: doomed.id }
        })
        const boundToKept = yield* client.apiKeys.create({
          headers: {},
          payload: { name: "kept bot", channel_id: kept.id }
        })
        const doomedBot = yield* apiClient(api, boundToDoomed.key)
        const keptBot = yield* apiClient(api, boundToKept.key)
        // both bound keys are cached before the delete
        expect((yield* doomedBot.me.get({})).channel_id).toBe(doomed.id)
        expect((yield* keptBot.me.get({})).channel_id).toBe(kept.id)

        yield* client.channels.delete({ params: { id: doomed.id } })
        expect(yield* Effect.flip(doomedBot.me.get({}))).toMatchObject({
          _tag: "Unauthorized",
          code: "invalid_api_key"
        })
        expect((yield* keptBot.me.get({})).channel_id).toBe(kept.id)

        const keys = yield* client.apiKeys.list({ query: {} })
        const byId = new Map(keys.data.map((k) => [k.id, k.revoked_at]))
        expect(byId.get(boundToDoomed.id)).not.toBeNull()
        expect(byId.get(boundToKept.id)).toBeNull()
        expect(byId.get(keyId)).toBeNull()

        const audit = yield* client.audit.list({
          query: { resource_type: "api_key", resource_id: boundToDoomed.id }
        })
        expect(audit.data.map((e) => [e.action, e.actor, e.data])).toEqual([
          [
            "api_key.revoked",
            { type: "api_key", id: keyId },
            { reason: "channel_deleted", channel_id: doomed.id }
          ],
          ["api_key.created", { type: "api_key", id: keyId }, { name: "doomed bot", channel_id: doomed.id }]
        ])
      })
    )
  }
)
