import { expect } from "@effect/vitest"
import { Effect } from "effect"
import { request } from "../support/http.ts"
import type { IsolationFixture, Owner } from "./fixture.ts"

export const ownChannel = (owner: Owner, connect?: "qr") =>
  Effect.gen(function* () {
    const created = yield* request(owner.api, "POST", "/v1/channels", {
      key: owner.key,
      body: { name: "owned" }
    })
    expect(created.status).toBe(201)
    if (connect) {
      const connected = yield* request(owner.api, "POST", `/v1/channels/${created.body.id}/connect`, {
        key: owner.key,
        body: { method: connect }
      })
      expect(connected.status).toBe(202)
    }
    return created.body as { id: string; name: string }
  })

/** The owner still sees the channel as it was: name and status. */
const unchanged = (owner: Owner, id: string, status: string) =>
  Effect.map(request(owner.api, "GET", `/v1/channels/${id}`, { key: owner.key }), (reply) => {
    expect(reply.status, "the owner's channel is still there").toBe(200)
    expect(reply.body.name).toBe("owned")
    expect(reply.body.status).toBe(status)
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
      yield* request(owner.api, "POST", `/v1/channels/${channel.id}/logout`, { key: owner.key })
      const events = yield* request(owner.api, "GET", "/v1/events", { key: owner.key })
      expect(events.body.data.length).toBeGreaterThan(0)
      return { ownedIds: [channel.id, ...events.body.data.map((e: { id: string }) => e.id)] }
    })
}
