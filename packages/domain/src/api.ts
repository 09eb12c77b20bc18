import { Context, Schema } from "effect"
import {
  HttpApi,
  HttpApiEndpoint,
  HttpApiGroup,
  HttpApiMiddleware,
  HttpApiSchema,
  HttpApiSecurity,
  OpenApi
} from "effect/http-api"
import { AuditEvent, AuditQuery } from "./audit.ts"
import {
  Channel,
  ConnectAccepted,
  ConnectRequest,
  CreateChannel,
  lifecycleOperationsPerMinute,
  QrCode,
  UpdateChannel
} from "./channels.ts"
import { Event, EventQuery } from "./events.ts"
import { ApiKeyId, ChannelId, CustomerId } from "./ids.ts"
import { Page, PageQuery } from "./pagination.ts"
import {
  Forbidden,
  IdempotencyKeyInUse,
  IdempotencyKeyReused,
  IdempotentAnswerRevoked,
  InvalidRequest,
  InvalidState,
  NotFound,
  PayloadTooLarge,
  PlanLimitReached,
  RateLimited,
  ServiceUnavailable,
  TooManyFailedAuthentications,
  Unauthorized
} from "./problems.ts"
import { ApiKey, ApiKeyCreated, CreateApiKey, Me, type Plan } from "./tenancy.ts"

/** Who is calling: resolved from the bearer key by the Authorization middleware. */
export class Caller extends Context.Service<
  Caller,
  {
    readonly customerId: CustomerId
    readonly keyId: ApiKeyId
    readonly channelId: ChannelId | null
    readonly plan: Plan
  }
>()("whatisup/Caller") {}

export class Authorization extends HttpApiMiddleware.Service<Authorization, { provides: Caller }>()(
  "whatisup/Authorization",
  {
    error: [Unauthorized, RateLimited, TooManyFailedAuthentications],
    security: { bearer: HttpApiSecurity.bearer }
  }
) {}

/** Turns every request-decoding failure into one 400 problem that names each offending field. */
export class RequestValidation extends HttpApiMiddleware.Service<RequestValidation>()(
  "whatisup/RequestValidation",
  { error: InvalidRequest }
) {}

/**
 * After authentication and before decoding: refuses a large JSON body with more unknown fields than a
 * 400 lists, so that thousands of them cost a count rather than an error each. Added to a group before
 * `Authorization`, since the middleware added last runs first. Its groups are those that take JSON
 * bodies, which are limited to `maxJsonBodyBytes` (413, refused before the body is read).
 */
export class PayloadFields extends HttpApiMiddleware.Service<PayloadFields>()("whatisup/PayloadFields", {
  error: [InvalidRequest, PayloadTooLarge]
}) {}

export const IdempotencyKey = Schema.String.pipe(
  Schema.check(
    Schema.isPattern(/^[\x21-\x7e]{1,255}$/, { message: "must be 1 to 255 visible ASCII characters" })
  )
).annotate({
  description:
    "Makes the create safe to retry for 24 hours: the same request with the same key from the same API key replays the first answer (Idempotent-Replayed: true); another API key's requests are its own. A replay never shows the plaintext of a key revoked since (409 idempotent_answer_revoked)"
})

const idempotencyHeaders = { "idempotency-key": Schema.optionalKey(IdempotencyKey) }
const creating = [IdempotencyKeyInUse, IdempotencyKeyReused] as const

export const Health = Schema.Struct({ status: Schema.Literal("ok") })

export class SystemGroup extends HttpApiGroup.make("system")
  .add(HttpApiEndpoint.get("healthz", "/healthz", { success: Health }))
  .add(HttpApiEndpoint.get("readyz", "/readyz", { success: Health, error: ServiceUnavailable }))
  .annotate(OpenApi.Title, "Operations") {}

export class MeGroup extends HttpApiGroup.make("me")
  .add(HttpApiEndpoint.get("get", "/v1/me", { success: Me }))
  .middleware(Authorization)
  .annotate(OpenApi.Title, "Caller") {}

export class ApiKeysGroup extends HttpApiGroup.make("apiKeys")
  .add(
    HttpApiEndpoint.post("create", "/v1/api-keys", {
      headers: idempotencyHeaders,
      payload: CreateApiKey,
      success: ApiKeyCreated.pipe(HttpApiSchema.status(201)),
      error: [...creating, IdempotentAnswerRevoked, Forbidden, PlanLimitReached]
    })
  )
  .add(
    HttpApiEndpoint.get("list", "/v1/api-keys", { query: PageQuery, success: Page(ApiKey), error: Forbidden })
  )
  .add(
    HttpApiEndpoint.delete("revoke", "/v1/api-keys/:id", {
      params: { id: ApiKeyId },
      success: ApiKey,
      error: [NotFound, Forbidden]
    })
  )
  .middleware(PayloadFields)
  .middleware(Authorization)
  .annotate(OpenApi.Title, "API keys") {}

const channelParams = { id: ChannelId }

const customerPaced = `Channel creates, deletes, connects, restarts and logouts are paced per customer too, all together: ${lifecycleOperationsPerMinute} a minute for each channel the plan allows (max_channels), then 429 rate_limited with Retry-After, so creating and deleting channels in a loop opens no more connections than the channels themselves could.`

const paced = `Connect, restart and logout are paced together: ${lifecycleOperationsPerMinute} a minute per channel, then 429 rate_limited with Retry-After. ${customerPaced}`

export class ChannelsGroup extends HttpApiGroup.make("channels")
  .add(
    HttpApiEndpoint.post("create", "/v1/channels", {
      headers: idempotencyHeaders,
      payload: CreateChannel,
      success: Channel.pipe(HttpApiSchema.status(201)),
      error: [...creating, Forbidden, PlanLimitReached, RateLimited]
    }).annotate(OpenApi.Description, `Creates a channel, up to the plan's max_channels. ${customerPaced}`)
  )
  .add(HttpApiEndpoint.get("list", "/v1/channels", { query: PageQuery, success: Page(Channel) }))
  .add(
    HttpApiEndpoint.get("get", "/v1/channels/:id", {
      params: channelParams,
      success: Channel,
      error: NotFound
    })
  )
  .add(
    HttpApiEndpoint.patch("update", "/v1/channels/:id", {
      params: channelParams,
      payload: UpdateChannel,
      success: Channel,
      error: NotFound
    })
  )
  .add(
    HttpApiEndpoint.delete("delete", "/v1/channels/:id", {
      params: channelParams,
      success: Channel,
      error: [NotFound, Forbidden, RateLimited]
    }).annotate(
      OpenApi.Description,
      `Deletes the channel for good: its device is unlinked and the API keys bound to it are revoked. ${customerPaced}`
    )
  )
  .add(
    HttpApiEndpoint.post("connect", "/v1/channels/:id/connect", {
      params: channelParams,
      payload: ConnectRequest,
      success: ConnectAccepted.pipe(HttpApiSchema.status(202)),
      error: [NotFound, InvalidState, RateLimited]
    }).annotate(
      OpenApi.Description,
      `Starts pairing the channel with a phone. ${paced} Connects by pairing code are also limited by the plan, per channel an hour and per customer a day (pairing_codes_per_channel_per_hour, pairing_codes_per_customer_per_day), since each pushes a "link a device" prompt to the number named; the audit row names that number. A pairing code not entered before WhatsApp ends the connection ends pairing (status created, reason pairing_code_timeout): no new code is asked for until the next connect.`
    )
  )
  .add(
    HttpApiEndpoint.get("qr", "/v1/channels/:id/qr", {
      params: channelParams,
      success: QrCode.annotate({
        description: "JSON by default; send Accept: image/png or image/svg+xml for an image of the code"
      }),
      error: [NotFound, InvalidState]
    })
  )
  .add(
    HttpApiEndpoint.post("logout", "/v1/channels/:id/logout", {
      params: channelParams,
      success: Channel.pipe(HttpApiSchema.status(202)),
      error: [NotFound, InvalidState, RateLimited]
    }).annotate(OpenApi.Description, `Unlinks the device and forgets its login. ${paced}`)
  )
  .add(
    HttpApiEndpoint.post("restart", "/v1/channels/:id/restart", {
      params: channelParams,
      success: Channel.pipe(HttpApiSchema.status(202)),
      error: [NotFound, InvalidState, RateLimited]
    }).annotate(
      OpenApi.Description,
      `Closes the channel's WhatsApp connection and opens it again. ${paced} A restart of a channel still pairing by code asks WhatsApp for a new code, so it also counts as a pairing code against the plan's limits (429 rate_limited beyond them).`
    )
  )
  .middleware(PayloadFields)
  .middleware(Authorization)
  .annotate(OpenApi.Title, "Channels") {}

export class EventsGroup extends HttpApiGroup.make("events")
  .add(
    HttpApiEndpoint.get("list", "/v1/events", {
      query: { ...PageQuery, ...EventQuery },
      success: Page(Event)
    })
  )
  .middleware(Authorization)
  .annotate(OpenApi.Title, "Events") {}

export class AuditGroup extends HttpApiGroup.make("audit")
  .add(
    HttpApiEndpoint.get("list", "/v1/audit-events", {
      query: { ...PageQuery, ...AuditQuery },
      success: Page(AuditEvent)
    })
  )
  .middleware(Authorization)
  .annotate(OpenApi.Title, "Audit log") {}

export class Api extends HttpApi.make("whatisup")
  .add(SystemGroup)
  .add(MeGroup)
  .add(ApiKeysGroup)
  .add(ChannelsGroup)
  .add(EventsGroup)
  .add(AuditGroup)
  .middleware(RequestValidation)
  .annotate(HttpApi.ParseOptions, { errors: "all" })
  .annotate(HttpApi.PayloadParseOptions, { errors: "all", onExcessProperty: "error" })
  .annotate(HttpApi.QueryParseOptions, { errors: "all", onExcessProperty: "error" })
  .annotate(OpenApi.Title, "WhatIsUp gateway API")
  .annotate(OpenApi.Version, "1.0.0") {}
