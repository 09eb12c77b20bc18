import { Api, Caller } from "@whatisup/domain"
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Audit } from "./audit.ts"

export const layerAuditHttp = HttpApiBuilder.group(Api, "audit", (handlers) =>
  Effect.gen(function* () {
    const audit = yield* Audit
    return handlers.handle("list", ({ query }) =>
      Effect.flatMap(Caller, (caller) =>
        audit.list({
          customerId: caller.customerId,
          limit: query.limit,
          cursor: query.cursor,
          resourceType: query.resource_type,
          resourceId: query.resource_id
        })
      )
    )
  })
)
