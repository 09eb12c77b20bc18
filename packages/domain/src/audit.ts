import { Schema } from "effect"
import { AuditEventId } from "./ids.ts"
import { Timestamp } from "./time.ts"

export const AuditActor = Schema.Struct({
  type: Schema.Literals(["api_key", "operator", "system"]).annotate({
    description:
      "api_key: a request made with one of the customer's keys; operator: the whatisup CLI; system: the gateway itself (a channel's connection)"
  }),
  id: Schema.NullOr(Schema.String).annotate({
    description: "The key's id for api_key; null for operator and system",
    examples: ["key_01m8ajcypxyd95pttxvh1rmaqs"]
  })
}).annotate({ description: "Who made the change" })
export type AuditActor = typeof AuditActor.Type

export const AuditEvent = Schema.Struct({
  id: AuditEventId,
  actor: AuditActor,
  action: Schema.String.annotate({
    description:
      "What was done, as resource.verb: api_key.created, channel.connect_requested, channel.connected...",
    examples: ["api_key.created"]
  }),
  resource_type: Schema.String.annotate({
    description: "The kind of thing changed: customer, api_key, channel...",
    examples: ["api_key"]
  }),
  resource_id: Schema.String.annotate({
    description: "The id of the thing changed",
    examples: ["key_01m8ajd0qs9vcj985gtg2fcnaj"]
  }),
  request_id: Schema.NullOr(Schema.String).annotate({
    description:
      "The gateway's id of the API request that made the change, as answered in its x-request-id header; admin-... for the operator's; null for changes the gateway made itself",
    examples: ["b986cc7f-ee91-4391-bb3a-596121ab8863"]
  }),
  client_request_id: Schema.NullOr(Schema.String).annotate({
    description:
      "The X-Request-Id the caller sent with that request, if any (echoed as x-client-request-id); null otherwise",
    examples: ["checkout-7f3a"]
  }),
  data: Schema.Record(Schema.String, Schema.Unknown).annotate({
    description: "What changed, by action (never a secret)",
    examples: [{ name: "ci", channel_id: null }]
  }),
  created_at: Timestamp("When the change was made")
}).annotate({ description: "One change to the customer's account, kept for good" })
export type AuditEvent = typeof AuditEvent.Type

const Token = Schema.String.pipe(
  Schema.check(Schema.isPattern(/^[a-z0-9_.-]{1,64}$/u, { message: "must be 1 to 64 of a-z, 0-9, _ . -" }))
)

export const AuditQuery = {
  resource_type: Schema.optionalKey(
    Token.annotate({
      description: "Only changes to this kind of thing (api_key, channel...)",
      examples: ["channel"]
    })
  ),
  resource_id: Schema.optionalKey(
    Token.annotate({
      description: "Only changes to the thing with this id",
      examples: ["ch_01m8mdm38wdvrz8hr11e5wqsdm"]
    })
  )
}
