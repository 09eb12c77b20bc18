import { Api, Caller } from "@whatisup/domain"
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Audit } from "../audit/audit.ts"
import { answerProblems } from "./problems.ts"

export const layerAuditHttp = HttpApiBuilder.group(Api, "audit", (handlers) =>
  Effect.gen(function* () {
    const audit = yield* Audit
    return handlers.handle("list", ({ query }) =>
      Effect.flatMap(Caller, (caller) =>
        audit.list({
          customerId: caller.customerId,
          limit: query.limit,
          cursor: query.cursor,
          // a channel-bound key sees what happened to its channel only
          resourceType: caller.channelId === null ? query.resource_type : "channel",
          resourceId: caller.channelId ?? query.resource_id
        })
      ).pipe(answerProblems)
    )
  })
)
