import { Api, Caller } from "@whatisup/domain"
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { EventLog } from "../events/eventLog.ts"
import { answerProblems } from "./problems.ts"

export const layerEventsHttp = HttpApiBuilder.group(Api, "events", (handlers) =>
  Effect.gen(function* () {
    const events = yield* EventLog
    return handlers.handle("list", ({ query }) =>
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
  })
)
