import { expect } from "@effect/vitest"
import type { WebhookEndpointId } from "@whatisup/domain"
import { Effect } from "effect"
import { ownChannel } from "./channels.ts"
import type { IsolationFixture, Owner } from "./fixture.ts"

/** Nothing listens there; the isolation test's gateway allows 127.0.0.1 as a webhook destination. */
const url = "http://127.0.0.1:9/owned"

const ownEndpoint = (owner: Owner) =>
  owner.client.webhooks.create({ headers: {}, payload: { url, description: "owned" } })

/** The owner still sees its endpoint as it was. */
const unchanged = (owner: Owner, id: WebhookEndpointId, updatedAt: string) =>
  Effect.map(owner.client.webhooks.get({ params: { id } }), (endpoint) => {
    expect(endpoint).toMatchObject({ description: "owned", status: "enabled", updated_at: updatedAt })
  })

const acting =
  (body?: unknown): IsolationFixture =>
  (owner) =>
    Effect.map(ownEndpoint(owner), (endpoint) => ({
      params: { id: endpoint.id },
      ...(body === undefined ? {} : { body }),
      ownedIds: [endpoint.id],
      stillIntact: unchanged(owner, endpoint.id, endpoint.updated_at)
    }))

const ownDelivery: IsolationFixture = (owner) =>
  Effect.gen(function* () {
    const endpoint = yield* ownEndpoint(owner)
    const delivery = yield* owner.client.webhooks.test({ params: { id: endpoint.id } })
    return {
      params: { id: delivery.id },
      ownedIds: [delivery.id, endpoint.id, delivery.event_id],
      stillIntact: Effect.map(owner.client.webhooks.delivery({ params: { id: delivery.id } }), (seen) =>
        expect(seen.endpoint_id).toBe(endpoint.id)
      )
    }
  })

export const webhookFixtures: Record<string, IsolationFixture> = {
  "POST /v1/channels/{id}/webhooks": (owner) =>
    Effect.map(ownChannel(owner), (channel) => ({
      params: { id: channel.id },
      body: { url },
      ownedIds: [channel.id],
      stillIntact: Effect.map(
        owner.client.webhooks.listForChannel({ params: { id: channel.id }, query: {} }),
        (endpoints) => expect(endpoints.data).toEqual([])
      )
    })),
  "GET /v1/channels/{id}/webhooks": (owner) =>
    Effect.gen(function* () {
      const channel = yield* ownChannel(owner)
      const endpoint = yield* owner.client.webhooks.createForChannel({
        params: { id: channel.id },
        headers: {},
        payload: { url }
      })
      return { params: { id: channel.id }, ownedIds: [channel.id, endpoint.id] }
    }),
  "POST /v1/webhooks": (owner) =>
    Effect.map(ownEndpoint(owner), (endpoint) => ({ body: { url }, ownedIds: [endpoint.id] })),
  "GET /v1/webhooks": (owner) => Effect.map(ownEndpoint(owner), (endpoint) => ({ ownedIds: [endpoint.id] })),
  "GET /v1/webhooks/{id}": acting(),
  "PATCH /v1/webhooks/{id}": acting({ description: "taken over", enabled: false }),
  "DELETE /v1/webhooks/{id}": acting(),
  "POST /v1/webhooks/{id}/rotate-secret": acting({}),
  "POST /v1/webhooks/{id}/test": acting(),
  "POST /v1/webhooks/{id}/recover": acting({ since: "2020-01-01T00:00:00Z" }),
  "GET /v1/webhooks/{id}/deliveries": acting(),
  "GET /v1/deliveries/{id}": ownDelivery,
  "POST /v1/deliveries/{id}/redeliver": ownDelivery
}
