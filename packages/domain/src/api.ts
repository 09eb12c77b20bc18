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
  channelExample,
  ConnectAccepted,
  ConnectRequest,
  CreateChannel,
  lifecycleOperationsPerMinute,
  QrCode,
  UpdateChannel
} from "./channels.ts"
import {
  Event,
  EventQuery,
  EventStreamFrames,
  eventStreamKeepAliveSeconds,
  LastEventId,
  maxEventStreamsPerKey
} from "./events.ts"
import { ApiKeyId, ChannelId, CustomerId, DeliveryId, MessageId, WebhookEndpointId } from "./ids.ts"
import { Message, MessageQuery, MessageWithHistory, SendMessage } from "./messages.ts"
import { limitParameter, Page, PageQuery } from "./pagination.ts"
import {
  documentParameters,
  documentProblems,
  introduction,
  withEventStream,
  withMediaBytes,
  withQrImages
} from "./reference.ts"
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
  TooManyEventStreams,
  TooManyFailedAuthentications,
  Unauthorized
} from "./problems.ts"
import { ApiKey, ApiKeyCreated, CreateApiKey, type Customer, Me } from "./tenancy.ts"
import {
  CreateWebhookEndpoint,
  Delivery,
  DeliveryQuery,
  DeliveryWithAttempts,
  RecoverAccepted,
  RecoverRequest,
  RotateSecret,
  UpdateWebhookEndpoint,
  WebhookEndpoint,
  WebhookEndpointWithSecret
} from "./webhooks.ts"

/** Who is calling: resolved from the bearer key by the Authorization middleware. */
export class Caller extends Context.Service<
  Caller,
  {
    readonly customerId: CustomerId
    readonly keyId: ApiKeyId
    readonly channelId: ChannelId | null
    /**
     * The caller's customer (its plan among the rest), read with the key and as fresh as the key's own
     * state: every process reads both again when either changes.
     */
    readonly customer: Customer
  }
>()("whatisup/Caller") {}

export class Authorization extends HttpApiMiddleware.Service<Authorization, { provides: Caller }>()(
  "whatisup/Authorization",
  {
    error: [Unauthorized, RateLimited, TooManyFailedAuthentications],
    // lowercase, as OpenAPI viewers expect: the docs' generated curl then sends Authorization: Bearer
    security: {
      bearer: HttpApiSecurity.http({ scheme: "bearer" }).pipe(
        HttpApiSecurity.annotate(OpenApi.Format, "wiu_ followed by 43 characters"),
        HttpApiSecurity.annotate(
          OpenApi.Description,
          "An API key, sent as Authorization: Bearer wiu_... The operator issues a customer's first key (whatisup customers create); POST /v1/api-keys makes more."
        )
      )
    }
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
    Schema.isPattern(/^[\x21-\x7e]{1,255}$/u, { message: "must be 1 to 255 visible ASCII characters" })
  )
).annotate({
  description:
    "Makes the create safe to retry for 24 hours: the same request with the same key from the same API key replays the first answer (Idempotent-Replayed: true); another API key's requests are its own. A replay never shows the plaintext of a key revoked since (409 idempotent_answer_revoked)",
  examples: ["9f1c2e7a-4b3d-4e8f-a2c1-6d5b7e9f0a13"]
})

const idempotencyHeaders = { "idempotency-key": Schema.optionalKey(IdempotencyKey) }
const creating = [IdempotencyKeyInUse, IdempotencyKeyReused] as const

export const Health = Schema.Struct({
  status: Schema.Literal("ok").annotate({ description: "Always ok when the gateway answers" })
})

/** What /docs shows for an endpoint: a one-line summary and what a caller needs to know. */
const doc = (summary: string, description: string) => OpenApi.annotations({ summary, description })

export class SystemGroup extends HttpApiGroup.make("system")
  .add(
    HttpApiEndpoint.get("healthz", "/healthz", { success: Health }).annotateMerge(
      doc(
        "Liveness",
        "Answers 200 while the process serves HTTP, whatever the state of its database. No key needed."
      )
    )
  )
  .add(
    HttpApiEndpoint.get("readyz", "/readyz", { success: Health, error: ServiceUnavailable }).annotateMerge(
      doc(
        "Readiness",
        "Answers 200 once the database is reachable and migrated, else 503 not_ready: route traffic to the process only then. No key needed."
      )
    )
  )
  .annotate(OpenApi.Title, "Operations")
  .annotate(
    OpenApi.Description,
    "Health and readiness probes for load balancers and orchestrators; no key needed."
  ) {}

export class MeGroup extends HttpApiGroup.make("me")
  .add(
    HttpApiEndpoint.get("get", "/v1/me", { success: Me }).annotateMerge(
      doc(
        "Who am I",
        "The key's customer (with its plan), the key's id, and the channel the key is bound to (null for a key of the whole customer). A quick way to check a key."
      )
    )
  )
  .middleware(Authorization)
  .annotate(OpenApi.Title, "Caller")
  .annotate(OpenApi.Description, "Who the API key belongs to and what its plan allows.") {}

export class ApiKeysGroup extends HttpApiGroup.make("apiKeys")
  .add(
    HttpApiEndpoint.post("create", "/v1/api-keys", {
      headers: idempotencyHeaders,
      payload: CreateApiKey,
      success: ApiKeyCreated.pipe(HttpApiSchema.status(201)),
      error: [...creating, IdempotentAnswerRevoked, Forbidden, PlanLimitReached]
    }).annotateMerge(
      doc(
        "Create an API key",
        "Answers 201 with the new key's plaintext in key (wiu_...), shown this once: store it. With channel_id the key sees and acts on that channel alone. Counts against the plan's max_api_keys (403 plan_limit_reached). A key bound to a channel cannot create keys (403 forbidden)."
      )
    )
  )
  .add(
    HttpApiEndpoint.get("list", "/v1/api-keys", {
      query: PageQuery,
      success: Page(ApiKey),
      error: Forbidden
    }).annotateMerge(
      doc(
        "List API keys",
        "The customer's keys, revoked ones included, newest first, without their secret part (prefix and last_four help recognise one). A key bound to a channel cannot list keys (403 forbidden)."
      )
    )
  )
  .add(
    HttpApiEndpoint.delete("revoke", "/v1/api-keys/:id", {
      params: { id: ApiKeyId },
      success: ApiKey,
      error: [NotFound, Forbidden]
    }).annotateMerge(
      doc(
        "Revoke an API key",
        "The key stops working at once, on every gateway process; answers the key with revoked_at set. Revoking a revoked key answers it unchanged. A key may revoke itself."
      )
    )
  )
  .middleware(PayloadFields)
  .middleware(Authorization)
  .annotate(OpenApi.Title, "API keys")
  .annotate(
    OpenApi.Description,
    "Keys authenticate every /v1 request as Authorization: Bearer wiu_... A key's plaintext is shown once, when it is created; only a hash is stored."
  ) {}

const channelParams = { id: ChannelId }

const customerPaced = `Channel creates, deletes, connects, restarts and logouts are paced per customer too, all together: ${lifecycleOperationsPerMinute} a minute for each channel the plan allows (max_channels), then 429 rate_limited with Retry-After, so creating and deleting channels in a loop opens no more connections than the channels themselves could.`

const paced = `Connect, restart and logout are paced together: ${lifecycleOperationsPerMinute} a minute per channel, then 429 rate_limited with Retry-After. ${customerPaced}`

export class ChannelsGroup extends HttpApiGroup.make("channels")
  .add(
    HttpApiEndpoint.post("create", "/v1/channels", {
      headers: idempotencyHeaders,
      payload: CreateChannel,
      success: Channel.annotate({ examples: [channelExample("created")] }).pipe(HttpApiSchema.status(201)),
      error: [...creating, Forbidden, PlanLimitReached, RateLimited]
    }).annotateMerge(
      doc(
        "Create a channel",
        `Answers 201 with a channel in status created, not yet linked to a phone: connect it next. Counts against the plan's max_channels (403 plan_limit_reached). ${customerPaced}`
      )
    )
  )
  .add(
    HttpApiEndpoint.get("list", "/v1/channels", { query: PageQuery, success: Page(Channel) }).annotateMerge(
      doc("List channels", "The channels the key may see, newest first; deleted channels are left out.")
    )
  )
  .add(
    HttpApiEndpoint.get("get", "/v1/channels/:id", {
      params: channelParams,
      success: Channel,
      error: NotFound
    }).annotateMerge(
      doc(
        "Get a channel",
        "The channel's status and, while it pairs by code, the pairing_code to type into the phone."
      )
    )
  )
  .add(
    HttpApiEndpoint.patch("update", "/v1/channels/:id", {
      params: channelParams,
      payload: UpdateChannel,
      success: Channel,
      error: NotFound
    }).annotateMerge(doc("Rename a channel", "Changes the channel's name; its connection is untouched."))
  )
  .add(
    HttpApiEndpoint.delete("delete", "/v1/channels/:id", {
      params: channelParams,
      success: Channel.annotate({ examples: [channelExample("deleted", "channel_deleted")] }),
      error: [NotFound, Forbidden, RateLimited]
    }).annotateMerge(
      doc(
        "Delete a channel",
        `Unlinks the device from the phone, forgets its WhatsApp login, revokes the API keys bound to the channel and answers the channel in status deleted; lists leave it out from then on. A key bound to a channel cannot delete channels (403 forbidden). ${customerPaced}`
      )
    )
  )
  .add(
    HttpApiEndpoint.post("connect", "/v1/channels/:id/connect", {
      params: channelParams,
      payload: ConnectRequest,
      success: ConnectAccepted.pipe(HttpApiSchema.status(202)),
      error: [NotFound, InvalidState, RateLimited]
    }).annotateMerge(
      doc(
        "Connect a channel to WhatsApp",
        `Starts pairing a channel that is created, logged_out or failed, and answers 202 {"status":"pairing"}. With {"method":"qr"}, read the QR from GET /v1/channels/{id}/qr and scan it in WhatsApp on the phone (Settings → Linked devices → Link a device). With {"method":"pairing_code","phone_number":"+15551234567"}, the answer carries pairing_code when WhatsApp sends it in time (else read it from GET /v1/channels/{id}): type it on the phone (Link with phone number instead). The channel then moves to connecting and connected. A channel that is already pairing or connected answers 409 invalid_state. ${paced} Connects by pairing code are also limited by the plan, per channel an hour and per customer a day (pairing_codes_per_channel_per_hour, pairing_codes_per_customer_per_day), since each pushes a "link a device" prompt to the number named; the audit row names that number. A pairing code not entered before WhatsApp ends the connection ends pairing (status created, reason pairing_code_timeout): no new code is asked for until the next connect.`
      )
    )
  )
  .add(
    HttpApiEndpoint.get("qr", "/v1/channels/:id/qr", {
      params: channelParams,
      success: QrCode,
      error: [NotFound, InvalidState]
    })
      .annotate(OpenApi.Transform, withQrImages)
      .annotateMerge(
        doc(
          "Get the QR code to scan",
          "While a channel pairs by QR: the current code as JSON {qr, expires_at} by default, or as an image with Accept: image/png or Accept: image/svg+xml (curl -H 'Accept: image/png' -o qr.png). Codes change every 20 to 60 seconds; after a few unscanned rounds the channel rests in created with status_reason qr_timeout. Answers 409 invalid_state when there is no code to scan, with a detail that says why (not connected yet, connected already, pairing by code, or WhatsApp has not sent the first code yet)."
        )
      )
  )
  .add(
    HttpApiEndpoint.post("logout", "/v1/channels/:id/logout", {
      params: channelParams,
      success: Channel.annotate({ examples: [channelExample("logged_out", "logout_requested")] }).pipe(
        HttpApiSchema.status(202)
      ),
      error: [NotFound, InvalidState, RateLimited]
    }).annotateMerge(
      doc(
        "Log a channel out",
        `Unlinks the device from the phone and forgets the login; the channel ends logged_out (status_reason logout_requested) and may be connected again. Only a channel that is pairing, connecting, connected or reconnecting can log out (else 409 invalid_state). ${paced}`
      )
    )
  )
  .add(
    HttpApiEndpoint.post("restart", "/v1/channels/:id/restart", {
      params: channelParams,
      success: Channel.pipe(HttpApiSchema.status(202)),
      error: [NotFound, InvalidState, RateLimited]
    }).annotateMerge(
      doc(
        "Restart a channel's connection",
        `Closes the channel's WhatsApp connection and opens a new one with the same login (no new QR). Only for a channel that is pairing, connecting, connected or reconnecting (else 409 invalid_state). ${paced} A restart of a channel still pairing by code asks WhatsApp for a new code, so it also counts as a pairing code against the plan's limits (429 rate_limited beyond them).`
      )
    )
  )
  .middleware(PayloadFields)
  .middleware(Authorization)
  .annotate(OpenApi.Title, "Channels")
  .annotate(
    OpenApi.Description,
    "A channel is one WhatsApp phone number linked to the gateway as a companion device, as WhatsApp Web is. Create it, connect it by QR or by pairing code, and the gateway keeps its connection (and login) from then on."
  ) {}

export class MessagesGroup extends HttpApiGroup.make("messages")
  .add(
    HttpApiEndpoint.post("send", "/v1/channels/:id/messages", {
      params: channelParams,
      headers: idempotencyHeaders,
      payload: SendMessage,
      success: Message.pipe(HttpApiSchema.status(202)),
      error: [...creating, NotFound, InvalidState]
    }).annotateMerge(
      doc(
        "Send a message",
        "Queues the message and answers 202 with it (status queued) once it is stored: nothing accepted is lost, whatever happens to the gateway afterwards. The channel's actor sends its queue in order, at the plan's messages_per_minute, while the channel is connected; a message waits while it is not, and fails expired if it is not sent within WHATISUP_MESSAGE_MAX_AGE (24 h by default; one that may have reached WhatsApp, claimed by a gateway process that died or whose send had begun when its connection closed, is sent again under its WhatsApp id instead), or channel_deleted / channel_logged_out when the channel goes. A channel that is logged_out takes no sends (409 invalid_state): the phone that links it next may be another number's, so connect it first; a channel in any other status takes them, and they wait until it is connected. Each status change is stored and posted as message.sent, message.delivered, message.read or message.failed. A media link is fetched when the message is sent, through the same guard as webhook URLs. A resend after a crash reuses the WhatsApp id, so the recipient never gets two. context.message_id and reaction.message_id must name a message of this channel (400 naming the field otherwise)."
      )
    )
  )
  .add(
    HttpApiEndpoint.get("list", "/v1/channels/:id/messages", {
      params: channelParams,
      query: { ...PageQuery, ...MessageQuery },
      success: Page(Message),
      error: NotFound
    }).annotateMerge(
      doc(
        "List a channel's messages",
        "Sent and received messages of the channel, newest first, filtered by direction, status, to, from and creation time."
      )
    )
  )
  .add(
    HttpApiEndpoint.get("get", "/v1/messages/:id", {
      params: { id: MessageId },
      success: MessageWithHistory,
      error: NotFound
    }).annotateMerge(
      doc("Get a message", "The message with every status it went through and when, oldest first.")
    )
  )
  .add(
    HttpApiEndpoint.get("media", "/v1/messages/:id/media", {
      params: { id: MessageId },
      success: Schema.Void,
      error: [NotFound, InvalidState]
    })
      .annotate(OpenApi.Transform, withMediaBytes)
      .annotateMerge(
        doc(
          "Download an inbound message's media",
          "The file of an inbound image, video, audio, document or sticker, downloaded from WhatsApp and decrypted as it is streamed, with its Content-Type (and Content-Disposition for a document). 409 invalid_state for a message without media, or when WhatsApp no longer has the file (it keeps media for a limited time)."
        )
      )
  )
  .add(
    HttpApiEndpoint.post("read", "/v1/messages/:id/read", {
      params: { id: MessageId },
      success: Message.pipe(HttpApiSchema.status(202)),
      error: [NotFound, InvalidState]
    }).annotateMerge(
      doc(
        "Mark an inbound message as read",
        "Sends WhatsApp's read receipt (the blue ticks) for an inbound message and answers 202 with the message, its status read. The receipt goes out while the channel is connected. Only inbound messages can be marked read (409 invalid_state for outbound)."
      )
    )
  )
  .middleware(PayloadFields)
  .middleware(Authorization)
  .annotate(OpenApi.Title, "Messages")
  .annotate(
    OpenApi.Description,
    "Messages sent and received by a channel. Sends are accepted at once (202) and sent by the channel in order; every status change, and every inbound message (stored before WhatsApp is told it arrived), is an event posted to your webhooks."
  ) {}

export class EventsGroup extends HttpApiGroup.make("events")
  .add(
    HttpApiEndpoint.get("list", "/v1/events", {
      query: { ...PageQuery, ...EventQuery },
      success: Page(Event)
    }).annotateMerge(
      doc(
        "List events",
        "What happened to the key's channels, newest first: channel.qr, channel.connected, channel.disconnected, channel.logged_out, channel.failed, each with data.sequence numbering the channel's events from 1 so they can be put in order; and, for a key of the whole customer, webhook.test and webhook.disabled (which belong to no channel)."
      )
    )
  )
  .add(
    HttpApiEndpoint.get("stream", "/v1/events/stream", {
      query: EventQuery,
      headers: { "last-event-id": Schema.optionalKey(LastEventId) },
      success: EventStreamFrames.pipe(HttpApiSchema.asText({ contentType: "text/event-stream" })),
      error: TooManyEventStreams
    })
      .annotate(OpenApi.Transform, withEventStream)
      .annotateMerge(
        doc(
          "Follow events live (Server-Sent Events)",
          `The events GET /v1/events lists, as they happen, over one long response in text/event-stream (curl -N -H 'Authorization: Bearer wiu_...' .../v1/events/stream). The key goes in Authorization, never in the URL: a browser reads the stream with fetch, as a bare EventSource cannot send the header. Filters and visibility are those of GET /v1/events (channel_id, type; a key bound to a channel sees its channel's events only, a key of the whole customer also webhook.test and webhook.disabled). Each frame carries the event's id, its type as the SSE event name, and the event as JSON in data. Nothing is lost and nothing comes twice: reconnect with Last-Event-ID (EventSource does it by itself) to get exactly the events after the last one received. With channel_id (or a key bound to a channel) events come in data.sequence order; across channels they come in the order of the changes that made them, and an event waits until every change begun before it has finished. A comment line (: keep-alive) comes every ${eventStreamKeepAliveSeconds} s while nothing happens. A key may hold ${maxEventStreamsPerKey} streams open at once (then 429 too_many_event_streams, with Retry-After); a stream ends when its key is revoked, its customer suspended, or the gateway stops (reconnect: another process takes over).`
        )
      )
  )
  .middleware(Authorization)
  .annotate(OpenApi.Title, "Events")
  .annotate(
    OpenApi.Description,
    "The event log: every change of a channel's connection, every message received and every status a sent message reaches, numbered per channel, and the webhook endpoints' own events. Webhook endpoints get them posted as they happen; GET /v1/events/stream carries them live over Server-Sent Events."
  ) {}

const webhookParams = { id: WebhookEndpointId }

const endpointNotes =
  "The gateway resolves the URL and refuses it (400 naming body.url and why) when it is not http(s), carries user:password@, does not resolve, or resolves to any address that is not public (loopback, private, link-local, CGNAT, multicast, reserved, documentation, NAT64/6to4/Teredo/IPv4-mapped forms of these, cloud metadata); it checks again before every attempt. Counts against the plan's max_webhook_endpoints (403 plan_limit_reached). The answer carries the signing secret (whsec_...), shown this once: verify each request's webhook-id, webhook-timestamp and webhook-signature headers with it, as Standard Webhooks libraries do."

export class WebhooksGroup extends HttpApiGroup.make("webhooks")
  .add(
    HttpApiEndpoint.post("createForChannel", "/v1/channels/:id/webhooks", {
      params: channelParams,
      headers: idempotencyHeaders,
      payload: CreateWebhookEndpoint,
      success: WebhookEndpointWithSecret.pipe(HttpApiSchema.status(201)),
      error: [...creating, IdempotentAnswerRevoked, NotFound, PlanLimitReached]
    }).annotateMerge(
      doc(
        "Create a webhook endpoint for one channel",
        `Events of this channel (and of no other) are posted to the URL. A key bound to the channel may create it. ${endpointNotes}`
      )
    )
  )
  .add(
    HttpApiEndpoint.get("listForChannel", "/v1/channels/:id/webhooks", {
      params: channelParams,
      query: PageQuery,
      success: Page(WebhookEndpoint),
      error: NotFound
    }).annotateMerge(
      doc(
        "List a channel's webhook endpoints",
        "The endpoints made for this channel, newest first, without their secrets; the customer's endpoints for every channel are listed by GET /v1/webhooks."
      )
    )
  )
  .add(
    HttpApiEndpoint.post("create", "/v1/webhooks", {
      headers: idempotencyHeaders,
      payload: CreateWebhookEndpoint,
      success: WebhookEndpointWithSecret.pipe(HttpApiSchema.status(201)),
      error: [...creating, IdempotentAnswerRevoked, Forbidden, PlanLimitReached]
    }).annotateMerge(
      doc(
        "Create a webhook endpoint for every channel",
        `Events of every channel of the customer, present and future, are posted to the URL. A key bound to a channel cannot create one (403 forbidden): it creates its channel's with POST /v1/channels/{id}/webhooks. ${endpointNotes}`
      )
    )
  )
  .add(
    HttpApiEndpoint.get("list", "/v1/webhooks", {
      query: PageQuery,
      success: Page(WebhookEndpoint)
    }).annotateMerge(
      doc(
        "List webhook endpoints",
        "Every endpoint the key may manage, newest first, without secrets: all of the customer's, or for a key bound to a channel, that channel's."
      )
    )
  )
  .add(
    HttpApiEndpoint.get("get", "/v1/webhooks/:id", {
      params: webhookParams,
      success: WebhookEndpoint,
      error: NotFound
    }).annotateMerge(
      doc(
        "Get a webhook endpoint",
        "The endpoint, its status and why it is disabled if it is; never its secret."
      )
    )
  )
  .add(
    HttpApiEndpoint.patch("update", "/v1/webhooks/:id", {
      params: webhookParams,
      payload: UpdateWebhookEndpoint,
      success: WebhookEndpoint,
      error: NotFound
    }).annotateMerge(
      doc(
        "Change a webhook endpoint",
        "Changes its url (checked as at creation), description, event_types, or enabled. Disabling fails what is pending for it; enabling clears failing_since, and POST /v1/webhooks/{id}/recover sends again what failed meanwhile."
      )
    )
  )
  .add(
    HttpApiEndpoint.delete("delete", "/v1/webhooks/:id", {
      params: webhookParams,
      success: WebhookEndpoint,
      error: NotFound
    }).annotateMerge(
      doc(
        "Delete a webhook endpoint",
        "Nothing more is posted to it and its secret is forgotten; deliveries still pending fail. Answers the endpoint as it was last."
      )
    )
  )
  .add(
    HttpApiEndpoint.post("rotateSecret", "/v1/webhooks/:id/rotate-secret", {
      params: webhookParams,
      payload: RotateSecret,
      success: WebhookEndpointWithSecret,
      error: NotFound
    }).annotateMerge(
      doc(
        "Rotate an endpoint's signing secret",
        "Answers a new secret (shown this once). During the grace period (grace_period_seconds: 24 hours by default, at most 7 days) every request is signed with both the new and the previous secret, so receivers can switch without missing a request."
      )
    )
  )
  .add(
    HttpApiEndpoint.post("test", "/v1/webhooks/:id/test", {
      params: webhookParams,
      success: Delivery.pipe(HttpApiSchema.status(202)),
      error: [NotFound, InvalidState]
    }).annotateMerge(
      doc(
        "Send a test event",
        "Posts a webhook.test event to this endpoint alone, whatever its event_types, and answers its delivery (follow it with GET /v1/deliveries/{id}). A disabled endpoint answers 409 invalid_state."
      )
    )
  )
  .add(
    HttpApiEndpoint.post("recover", "/v1/webhooks/:id/recover", {
      params: webhookParams,
      payload: RecoverRequest,
      success: RecoverAccepted.pipe(HttpApiSchema.status(202)),
      error: [NotFound, InvalidState]
    }).annotateMerge(
      doc(
        "Send failed deliveries again",
        "Queues again, at once and with a fresh retry schedule, every delivery to this endpoint that failed and was created since the moment given (one with an attempt still in flight is left to it). A disabled endpoint answers 409 invalid_state: enable it first."
      )
    )
  )
  .add(
    HttpApiEndpoint.get("deliveries", "/v1/webhooks/:id/deliveries", {
      params: webhookParams,
      query: { ...PageQuery, ...DeliveryQuery },
      success: Page(Delivery),
      error: NotFound
    }).annotateMerge(
      doc(
        "List an endpoint's deliveries",
        "One per event posted (or to be posted) to the endpoint, newest first; filter by status, event_type and creation time (since, until)."
      )
    )
  )
  .add(
    HttpApiEndpoint.get("delivery", "/v1/deliveries/:id", {
      params: { id: DeliveryId },
      success: DeliveryWithAttempts,
      error: NotFound
    }).annotateMerge(
      doc(
        "Get a delivery with its attempts",
        "The delivery and every attempt: when, how long, the status code or the error type, and the first 4 KiB of the answer."
      )
    )
  )
  .add(
    HttpApiEndpoint.post("redeliver", "/v1/deliveries/:id/redeliver", {
      params: { id: DeliveryId },
      success: Delivery.pipe(HttpApiSchema.status(202)),
      error: [NotFound, InvalidState]
    }).annotateMerge(
      doc(
        "Send a delivery again",
        "Queues the delivery again, at once and with a fresh retry schedule, whatever its status; the event keeps its id, so receivers see the same webhook-id. A disabled endpoint, or a delivery with an attempt in flight (never two at once), answers 409 invalid_state."
      )
    )
  )
  .middleware(PayloadFields)
  .middleware(Authorization)
  .annotate(OpenApi.Title, "Webhooks")
  .annotate(
    OpenApi.Description,
    "Endpoints the gateway posts events to, as Standard Webhooks: body {type, timestamp, data}, headers webhook-id (the event id, the same on every retry), webhook-timestamp and webhook-signature (v1,<base64 HMAC-SHA256 of id.timestamp.body>). At least once: an attempt that does not get a 2xx within 15 s is retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (±20 %, or after the endpoint's Retry-After), then fails; 410 Gone disables the endpoint, and so do 5 days of failures. Redirects are not followed."
  ) {}

export class AuditGroup extends HttpApiGroup.make("audit")
  .add(
    HttpApiEndpoint.get("list", "/v1/audit-events", {
      query: { ...PageQuery, ...AuditQuery },
      success: Page(AuditEvent)
    }).annotateMerge(
      doc(
        "List audit events",
        "Every change to the customer's account, newest first, with who made it (a key, the operator, or the gateway) and the request that did. A key bound to a channel sees its channel's entries only."
      )
    )
  )
  .middleware(Authorization)
  .annotate(OpenApi.Title, "Audit log")
  .annotate(
    OpenApi.Description,
    "An append-only record of every change made by your keys, the operator or the gateway; no entry is ever changed or removed."
  ) {}

export class Api extends HttpApi.make("whatisup")
  .add(SystemGroup)
  .add(MeGroup)
  .add(ApiKeysGroup)
  .add(ChannelsGroup)
  .add(MessagesGroup)
  .add(EventsGroup)
  .add(WebhooksGroup)
  .add(AuditGroup)
  .middleware(RequestValidation)
  // params and headers (at most one field each on every endpoint) are decoded, and answers encoded, on
  // Effect's fast path, which stops at the first error; a body and a query name every wrong field
  .annotate(HttpApi.PayloadParseOptions, { errors: "all", onExcessProperty: "error", reportInput: true })
  .annotate(HttpApi.QueryParseOptions, { errors: "all", onExcessProperty: "error" })
  .annotate(OpenApi.Title, "WhatIsUp gateway API")
  .annotate(OpenApi.Version, "1.0.0")
  .annotate(OpenApi.Description, introduction)
  .annotate(OpenApi.Transform, (spec) =>
    documentProblems(documentParameters(spec, { limit: limitParameter }))
  ) {}
