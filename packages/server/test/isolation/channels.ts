import { expect } from "@effect/vitest"
import type { ChannelId } from "@whatisup/domain"
import { Effect } from "effect"
import type { IsolationFixture, Owner } from "./fixture.ts"

export const ownChannel = (owner: Owner, connect?: "qr") =>
  Effect.gen(function* () {
    const created = yield* owner.client.channels.create({ headers: {}, payload: { name: "owned" } })
    if (connect) {
      const connected = yield* owner.client.channels.connect({
        params: { id: created.id },
        payload: { method: connect }
      })
      expect(connected.status).toBe("pairing")
    }
    return created
  })

/** The owner still sees the channel as it was: name and status. */
const unchanged = (owner: Owner, id: ChannelId, status: string) =>
  Effect.map(owner.client.channels.get({ params: { id } }), (channel) => {
    expect(channel.name, "the owner's channel is still there").toBe("owned")
    expect(channel.status).toBe(status)
  })

const acting =
  (status: "created" | "pairing", body?: unknown): IsolationFixture =>
  (owner) =>
    Effect.map(ownChannel(owner, status === "pairing" ? "qr" : undefined), (channel) => ({
      params: { id: channel.id },
      ...(body === undefined ? {} : { body }),
      ownedIds: [channel.id],
      stillIntact: unchanged(owner, channel.id, status)
    }))

export const channelFixtures: Record<string, IsolationFixture> = {
  "POST /v1/channels": (owner) =>
    Effect.map(ownChannel(owner), (channel) => ({ body: {}, ownedIds: [channel.id] })),
  "GET /v1/channels": (owner) => Effect.map(ownChannel(owner), (channel) => ({ ownedIds: [channel.id] })),
  "GET /v1/channels/{id}": acting("created"),
  "PATCH /v1/channels/{id}": acting("created", { name: "taken over" }),
  "DELETE /v1/channels/{id}": acting("created"),
  "POST /v1/channels/{id}/connect": acting("created", { method: "qr" }),
  "GET /v1/channels/{id}/qr": acting("pairing"),
  "POST /v1/channels/{id}/logout": acting("pairing"),
  "POST /v1/channels/{id}/restart": acting("pairing"),
  "GET /v1/events": (owner) =>
    Effect.gen(function* () {
      const channel = yield* ownChannel(owner, "qr")
      yield* owner.client.channels.logout({ params: { id: channel.id } })
      const events = yield* owner.client.events.list({ query: {} })
      expect(events.data.length).toBeGreaterThan(0)
      return { ownedIds: [channel.id, ...events.data.map((e) => e.id)] }
    })
}
