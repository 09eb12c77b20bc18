import { Api, Caller, InvalidRequest, TooManyEventStreams } from "@whatisup/domain"
import { Effect } from "effect"
import { HttpEffect, HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import type { Feed, LastEventIdRefused } from "../events/eventFeed.ts"
import { EventLog } from "../events/eventLog.ts"
import { type EventStreamLimitReached, EventStreams } from "../events/eventStreams.ts"
import { answerProblems } from "./problems.ts"

const lastEventIdAdvice: Record<LastEventIdRefused["reason"], string> = {
  unknown_event: "must be the id of an event this stream sent (evt_...)",
  sequence_needs_channel: "a sequence number is taken only with channel_id (or by a key bound to a channel)",
  sequence_ahead: "the channel has not reached this sequence number"
}

/** Where to resume cannot be told: the header is named, and nothing about any other customer's events. */
const lastEventIdRefused = (error: LastEventIdRefused) =>
  new InvalidRequest({
    detail:
      "Last-Event-ID does not name a point of this stream; reconnect without it to follow from now on, or read what you missed with GET /v1/events",
    errors: [{ path: "header.last-event-id", message: lastEventIdAdvice[error.reason] }]
  })

const streamLimitReached = (error: EventStreamLimitReached) =>
  Effect.as(
    HttpEffect.appendPreResponseHandler((_request, response) =>
      Effect.succeed(HttpServerResponse.setHeader(response, "retry-after", String(error.retryAfterSeconds)))
    ),
    new TooManyEventStreams({
      detail: `An API key may hold ${error.max} event streams open at once: close one, then retry`,
      max: error.max,
      retry_after: error.retryAfterSeconds
    })
  ).pipe(Effect.flip)

export const layerEventsHttp = HttpApiBuilder.group(Api, "events", (handlers) =>
  Effect.gen(function* () {
    const events = yield* EventLog
    const streams = yield* EventStreams
    return handlers
      .handle("list", ({ query }) =>
        Effect.gen(function* () {
          const caller = yield* Caller
          // a channel-bound key sees its own channel's events only
          if (
            caller.channelId !== null &&
            query.channel_id !== undefined &&
            query.channel_id !== caller.channelId
          ) {
            return { data: [], next_cursor: null }
          }
          return yield* events.list({
            customerId: caller.customerId,
            channelId: caller.channelId ?? query.channel_id,
            type: query.type,
            limit: query.limit,
            cursor: query.cursor
          })
        }).pipe(answerProblems)
      )
      .handle("stream", ({ query, headers }) =>
        Effect.gen(function* () {
          const caller = yield* Caller
          const channelId = caller.channelId ?? query.channel_id
          // the same visibility as the list: a channel-bound key sees its own channel's events only
          const feed: Feed =
            caller.channelId !== null &&
            query.channel_id !== undefined &&
            query.channel_id !== caller.channelId
              ? { _tag: "Nothing" }
              : channelId === undefined
                ? { _tag: "Customer", customerId: caller.customerId, type: query.type }
                : { _tag: "Channel", customerId: caller.customerId, channelId, type: query.type }
          const body = yield* streams
            .open({
              customerId: caller.customerId,
              keyId: caller.keyId,
              feed,
              lastEventId: headers["last-event-id"]
            })
            .pipe(
              Effect.catchTags({
                LastEventIdRefused: (error) => Effect.fail(lastEventIdRefused(error)),
                EventStreamLimitReached: streamLimitReached
              })
            )
          return HttpServerResponse.stream(body, {
            contentType: "text/event-stream",
            headers: { "cache-control": "no-store", "x-accel-buffering": "no" }
          })
        })
      )
  })
)
