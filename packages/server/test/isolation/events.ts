import { expect } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import { apiClient } from "../support/api.ts"
import { openedEventStream, refusedEventStream } from "../support/eventStream.ts"
import { ownChannel } from "./channels.ts"
import type { IsolationFixture } from "./fixture.ts"

/** Nothing listens there; the isolation test's gateway allows 127.0.0.1 as a webhook destination. */
const url = "http://127.0.0.1:9/owned"

const unknownEventId = () =>
  `evt_${Array.from(crypto.randomBytes(26), (b) => "0123456789abcdefghjkmnpqrstvwxyz"[b % 32]).join("")}`

export const eventFixtures: Record<string, IsolationFixture> = {
  "GET /v1/events/stream": (owner) =>
    Effect.gen(function* () {
      const channel = yield* ownChannel(owner, "qr")
      const endpoint = yield* owner.client.webhooks.create({ headers: {}, payload: { url } })
      const test = yield* owner.client.webhooks.test({ params: { id: endpoint.id } })
      const listed = yield* owner.client.events.list({ query: {} })
      const ownedIds = [channel.id, endpoint.id, test.id, ...listed.data.map((event) => event.id)]
      return {
        ownedIds,
        intrude: (intruder) =>
          Effect.gen(function* () {
            // resuming from the owner's event is refused as an id that exists nowhere is
            for (const query of [undefined, `channel_id=${channel.id}`]) {
              const theirs = yield* refusedEventStream(intruder.api, {
                key: intruder.key,
                lastEventId: test.event_id,
                query
              })
              const unknown = yield* refusedEventStream(intruder.api, {
                key: intruder.key,
                lastEventId: unknownEventId(),
                query
              })
              expect(theirs.status).toBe(400)
              expect(theirs.problem).toEqual(unknown.problem)
            }
            // following live: the owner's events never come, the intruder's own do
            const all = yield* openedEventStream(intruder.api, { key: intruder.key })
            const ofTheirChannel = yield* openedEventStream(intruder.api, {
              key: intruder.key,
              query: `channel_id=${channel.id}`
            })
            const again = yield* owner.client.webhooks.test({ params: { id: endpoint.id } })
            const client = yield* apiClient(intruder.api, intruder.key)
            const own = yield* client.webhooks.create({ headers: {}, payload: { url } })
            const mine = yield* client.webhooks.test({ params: { id: own.id } })
            const seen = yield* all.eventsThrough((event) => event.id === mine.event_id)
            expect(seen.map((event) => event.id)).toEqual([mine.event_id])
            // the intruder's key revokes itself: the stream of the owner's channel ends, having carried nothing
            const me = yield* client.me.get()
            yield* client.apiKeys.revoke({ params: { id: me.key_id } })
            yield* ofTheirChannel.ends
            const carried = JSON.stringify([...all.frames, ...ofTheirChannel.frames])
            for (const id of [...ownedIds, again.event_id]) expect(carried).not.toContain(id)
          })
      }
    })
}
