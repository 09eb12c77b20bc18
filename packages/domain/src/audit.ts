import { Schema } from "effect"
import { AuditEventId } from "./ids.ts"

export const AuditActor = Schema.Struct({
  type: Schema.Literals(["api_key", "operator", "system"]),
  id: Schema.NullOr(Schema.String)
})
export type AuditActor = typeof AuditActor.Type

export const AuditEvent = Schema.Struct({
  id: AuditEventId,
  actor: AuditActor,
  action: Schema.String,
  resource_type: Schema.String,
  resource_id: Schema.String,
  request_id: Schema.NullOr(Schema.String).annotate({
    description:
      "the gateway's id of the request that made the change, as answered in its X-Request-Id header"
  }),
  client_request_id: Schema.NullOr(Schema.String).annotate({
    description: "the X-Request-Id the client sent with that request, if any (echoed as X-Client-Request-Id)"
  }),
  data: Schema.Record(Schema.String, Schema.Unknown),
  created_at: Schema.String
})
export type AuditEvent = typeof AuditEvent.Type

const Token = Schema.String.pipe(
  Schema.check(Schema.isPattern(/^[a-z0-9_.-]{1,64}$/, { message: "must be 1 to 64 of a-z, 0-9, _ . -" }))
)

export const AuditQuery = {
  resource_type: Schema.optionalKey(Token),
  resource_id: Schema.optionalKey(Token)
}
