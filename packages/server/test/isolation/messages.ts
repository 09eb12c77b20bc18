import { expect } from "@effect/vitest"
import type { ChannelId, MessageId } from "@whatisup/domain"
import { Effect } from "effect"
import { ownChannel } from "./channels.ts"
import type { IsolationFixture, Owner } from "./fixture.ts"

const text = { to: "+15557654321", type: "text", text: { body: "owned" } } as const

const ownMessage = (owner: Owner) =>
  Effect.gen(function* () {
    const channel = yield* ownChannel(owner)
    const message = yield* owner.client.messages.send({
      params: { id: channel.id },
      headers: {},
      payload: text
    })
    return { channel, message }
  })

/** The owner still sees its message as it was accepted, and no other in its channel. */
const unchanged = (owner: Owner, channelId: ChannelId, id: MessageId) =>
  Effect.gen(function* () {
    const seen = yield* owner.client.messages.get({ params: { id } })
    expect(seen).toMatchObject({ status: "queued", text: { body: "owned" } })
    const listed = yield* owner.client.messages.list({ params: { id: channelId }, query: {} })
    expect(listed.data.map((message) => message.id)).toEqual([id])
  })

const acting: IsolationFixture = (owner) =>
  Effect.map(ownMessage(owner), ({ channel, message }) => ({
    params: { id: message.id },
    ownedIds: [message.id, channel.id],
    stillIntact: unchanged(owner, channel.id, message.id)
  }))

export const messageFixtures: Record<string, IsolationFixture> = {
  "POST /v1/channels/{id}/messages": (owner) =>
    Effect.map(ownChannel(owner), (channel) => ({
      params: { id: channel.id },
      body: text,
      ownedIds: [channel.id],
      stillIntact: Effect.map(owner.client.messages.list({ params: { id: channel.id }, query: {} }), (page) =>
        expect(page.data).toEqual([])
      )
    })),
  "GET /v1/channels/{id}/messages": (owner) =>
    Effect.map(ownMessage(owner), ({ channel, message }) => ({
      params: { id: channel.id },
      ownedIds: [channel.id, message.id],
      stillIntact: unchanged(owner, channel.id, message.id)
    })),
  "GET /v1/messages/{id}": acting,
  "GET /v1/messages/{id}/media": acting,
  "POST /v1/messages/{id}/read": acting
}
