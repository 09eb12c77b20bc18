import { lifecycleOperationsPerMinute } from "./channels.ts"
import { eventStreamKeepAliveSeconds, eventStreamRetryMillis, maxEventStreamsPerKey } from "./events.ts"
import { maxFieldErrors } from "./problems.ts"

/** What /docs says before the endpoints: what the API is for and the rules every endpoint follows. */
export const introduction = `WhatIsUp links your application to WhatsApp. Each phone number you link is a **channel**: the gateway holds its WhatsApp Web connection (as a linked device of the phone) and keeps it, and its login, across restarts.

**What works today:** API keys, channels paired by QR code or by pairing code, sending messages of every kind (text, image, video, audio and voice notes, documents, stickers, locations, reactions, replies) with their status as it changes, receiving them (stored before WhatsApp is told they arrived, media downloaded on demand), the event log of every channel change and message, followed live over Server-Sent Events (\`GET /v1/events/stream\`), webhooks that post every event to your URLs (signed, retried, with a delivery log), and the audit log.

## Quick start

1. Your operator creates your account and first key: \`whatisup customers create "Acme Corp"\` prints a key \`wiu_...\` once.
2. Create a channel: \`POST /v1/channels {"name":"support"}\`.
3. Connect it: \`POST /v1/channels/{id}/connect {"method":"qr"}\`, then \`GET /v1/channels/{id}/qr\` (\`-H 'Accept: image/png'\` for an image) and scan it with WhatsApp on the phone (Settings → Linked devices → Link a device). Or pair by code: \`{"method":"pairing_code","phone_number":"+15551234567"}\` and type the \`pairing_code\` it answers on the phone.
4. Follow it: \`GET /v1/channels/{id}\` shows \`connected\` and the phone number; \`GET /v1/events?channel_id={id}\` lists what happened.
5. Send a message: \`POST /v1/channels/{id}/messages {"to":"+15557654321","type":"text","text":{"body":"hello"}}\` answers 202 with the message, \`queued\`; \`GET /v1/messages/{id}\` follows it to \`sent\`, \`delivered\` and \`read\`.
6. Have events posted to you: \`POST /v1/webhooks {"url":"https://example.com/hooks"}\` answers the signing secret \`whsec_...\` once; \`POST /v1/webhooks/{id}/test\` sends a \`webhook.test\`. Inbound messages arrive as \`message.received\`.

## Authentication

Send an API key on every \`/v1\` request: \`Authorization: Bearer wiu_...\`. A key's plaintext is shown once, when it is created. A key created with \`channel_id\` sees and acts on that channel alone, and cannot manage keys or other channels. A missing, malformed, unknown or revoked key, or a suspended customer, is a 401.

## Errors

Errors are \`application/problem+json\` (RFC 9457): \`type\`, \`status\`, \`title\`, a \`detail\` that says what to do, and a stable \`code\` to act on:

| status | code | meaning |
| --- | --- | --- |
| 400 | \`invalid_content_type\` | a body sent as anything but \`application/json\` |
| 400 | \`invalid_request\` | malformed JSON, or invalid fields: \`errors\` lists each as \`{path, message}\`, the path starting with \`body.\`, \`query.\`, \`path.\` or \`header.\`; at most ${maxFieldErrors}, the rest counted in \`errors_omitted\` |
| 401 | \`missing_api_key\`, \`malformed_api_key\`, \`invalid_api_key\`, \`customer_suspended\` | see Authentication |
| 403 | \`forbidden\` | a key bound to a channel tried to manage the account |
| 403 | \`plan_limit_reached\` | the plan allows no more (\`limit\`, \`max\`) |
| 404 | \`not_found\` | no such resource for this key (another customer's answers the same) |
| 404 | \`route_not_found\` | no such path |
| 405 | \`method_not_allowed\` | the path exists but not with this method; \`Allow\` lists those it takes |
| 409 | \`invalid_state\` | not possible in the resource's current status (\`current_status\`) |
| 409 | \`idempotency_key_in_use\`, \`idempotent_answer_revoked\` | see Idempotency |
| 413 | \`payload_too_large\` | JSON bodies are limited to 64 KiB (\`max_bytes\`) |
| 422 | \`idempotency_key_reused\` | see Idempotency |
| 429 | \`rate_limited\`, \`too_many_failed_authentications\` | see Rate limits |
| 429 | \`too_many_event_streams\` | the key holds as many open event streams as it may (\`max\`); see Live events |
| 500 | \`internal_error\` | a fault in the gateway; the response's \`x-request-id\` finds it in the logs |
| 503 | \`database_unavailable\`, \`not_ready\` | retry after \`Retry-After\` seconds |

Every response carries the gateway's own \`x-request-id\`, which its logs and the audit log's \`request_id\` name too. An \`X-Request-Id\` you send is kept beside it: echoed in \`x-client-request-id\` and recorded in the audit log's \`client_request_id\`.

## Idempotency

\`POST /v1/api-keys\`, \`POST /v1/channels\`, \`POST /v1/channels/{id}/messages\`, \`POST /v1/webhooks\` and \`POST /v1/channels/{id}/webhooks\` take an \`Idempotency-Key\` header (1 to 255 visible ASCII characters). For 24 hours, the same key with the same body from the same API key replays the first answer (\`Idempotent-Replayed: true\`) instead of creating again; the same key with another body is a 422 \`idempotency_key_reused\`; a retry while the first request is still running is a 409 \`idempotency_key_in_use\`. A replay never shows the plaintext of a key revoked since, nor a webhook secret deleted or rotated since (409 \`idempotent_answer_revoked\`).

## Pagination

Lists answer \`{"data": [...], "next_cursor": ...}\`, newest first. \`?limit=\` takes 1 to 100 (default 20); pass \`next_cursor\` as \`?cursor=\` for the next page, until it is \`null\`.

## Rate limits

A customer may make the plan's \`api_requests_per_second\` (50 by default), all its keys together, in bursts of up to twice that. Beyond it the answer is a 429 \`rate_limited\` with \`Retry-After\` (and \`retry_after\`) in seconds.

Connect, restart and logout are paced together: ${lifecycleOperationsPerMinute} a minute per channel, whatever the plan. Connects by pairing code are also limited by the plan, \`pairing_codes_per_channel_per_hour\` (3 by default) and \`pairing_codes_per_customer_per_day\` (20 by default), since each pushes a "link a device" prompt to the number named. Beyond either, a 429 \`rate_limited\` with \`Retry-After\`.

A client address that sends too many malformed, unknown or revoked keys is refused for a while with a 429 \`too_many_failed_authentications\` and \`Retry-After\`; keys the gateway has already seen keep working from it meanwhile.

## Events and webhooks

Every change of a channel's connection is an event (\`channel.qr\`, \`channel.connected\`, \`channel.disconnected\`, \`channel.logged_out\`, \`channel.failed\`), and so is every message received (\`message.received\`, with the message) and every status a sent message reaches (\`message.sent\`, \`message.delivered\`, \`message.read\` with \`status\` read or played, \`message.failed\` with \`failure\`); each is numbered per channel in \`data.sequence\`: read them with \`GET /v1/events\`.

## Live events

\`GET /v1/events/stream\` carries the same events as they happen, as Server-Sent Events (\`text/event-stream\`), with the same \`channel_id\` and \`type\` filters and the same visibility: \`curl -N -H "Authorization: Bearer $KEY" localhost:8080/v1/events/stream\`. The key goes in the \`Authorization\` header, never in the URL, so a browser reads the stream with \`fetch\` (a bare \`EventSource\` cannot send it). Each event is one frame: \`id:\` the event's id, \`event:\` its type, \`data:\` the event as \`GET /v1/events\` lists it; the stream opens with \`retry: ${eventStreamRetryMillis}\` and sends a \`: keep-alive\` comment every ${eventStreamKeepAliveSeconds} s while nothing happens. Without \`Last-Event-ID\` it starts with what happens from then on; reconnect with \`Last-Event-ID\` set to the last id received (EventSource does this by itself) and it carries exactly the events after it, none lost and none twice; with \`channel_id\`, a sequence number is taken too. A \`Last-Event-ID\` the stream cannot have sent is a 400 naming \`header.last-event-id\`. With \`channel_id\` (or a key bound to a channel) events come in \`data.sequence\` order; across channels, in the order of the changes that made them, each once every change begun before it has finished. A key may hold ${maxEventStreamsPerKey} streams open at once (else 429 \`too_many_event_streams\` with \`Retry-After\`). A stream ends when its key is revoked or its customer suspended (the next connection is a 401), and when the gateway stops (reconnect and resume).

## Messages

\`POST /v1/channels/{id}/messages\` takes the WhatsApp Cloud API's message object (without \`messaging_product\`) and answers 202 once the message is stored: nothing accepted is lost. The channel sends its queue in order, at the plan's \`messages_per_minute\`, while it is connected; a message waits while it is not, and fails \`expired\` if it is not sent within the gateway's maximum age (24 hours by default). Media links are fetched when the message is sent, through the same guard as webhook URLs (public addresses only, no redirects, WhatsApp's size limits). A message sent again after a crash keeps its WhatsApp id, so the recipient never sees it twice. Inbound messages are stored before WhatsApp is told they arrived, once each however often WhatsApp delivers them; their files are downloaded from WhatsApp on demand by \`GET /v1/messages/{id}/media\`.

A **webhook endpoint** gets events posted as they happen: one for every channel (\`POST /v1/webhooks\`), or for one channel (\`POST /v1/channels/{id}/webhooks\`), optionally only some \`event_types\`. Each request is a Standard Webhooks request:

- body \`{"type": "channel.connected", "timestamp": "...", "data": {"channel_id": "ch_...", "sequence": 3, ...}}\`; a \`channel.qr\` carries the QR itself in \`data.qr\` while it can still be scanned;
- headers \`webhook-id\` (the event id: the same on every retry, so you can drop duplicates), \`webhook-timestamp\` (unix seconds) and \`webhook-signature\`: \`v1,\` and the base64 HMAC-SHA256 of \`{webhook-id}.{webhook-timestamp}.{body}\` under the secret (the base64 after \`whsec_\`); during a secret rotation's grace period two signatures, space-separated. Any Standard Webhooks library verifies them: \`new Webhook(secret).verify(body, headers)\`.

Answer 2xx within 15 seconds. Anything else (a redirect too: they are not followed) is retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (±20 %), or after your \`Retry-After\` (5 s to 10 h), then the delivery fails. Delivery is at least once, in no guaranteed order: order by \`data.sequence\`. \`410 Gone\` disables the endpoint at once, and so do 5 days of failures; either posts \`webhook.disabled\` to your other endpoints. \`GET /v1/webhooks/{id}/deliveries\` and \`GET /v1/deliveries/{id}\` show every attempt (status code or error, duration, the start of your answer); \`POST /v1/deliveries/{id}/redeliver\` and \`POST /v1/webhooks/{id}/recover\` send again. Webhook URLs must be public: the gateway refuses private, loopback, link-local and cloud-metadata addresses, at creation and before every attempt.`

type Json = Record<string, any>

/**
 * Parameters as /openapi.json shows them: each with the description of its schema (viewers read it
 * from the parameter), and `limit` as the bounded integer it is (its schema decodes query text).
 */
export const documentParameters = (spec: Json, overrides: { readonly limit: Json }): Json => {
  for (const operations of Object.values(spec.paths ?? {}) as Array<Json>) {
    for (const operation of Object.values(operations) as Array<Json>) {
      for (const parameter of (operation.parameters ?? []) as Array<Json>) {
        if (parameter.in === "query" && parameter.name === "limit") {
          const { description, ...schema } = overrides.limit
          parameter.schema = schema
          parameter.description = description
        }
        if (parameter.description === undefined && typeof parameter.schema?.description === "string") {
          parameter.description = parameter.schema.description
        }
      }
    }
  }
  return spec
}

/**
 * The QR endpoint's images, beside its JSON: the handler answers them by `Accept`, and the typed
 * client (which asks for JSON) keeps one success type.
 */
export const withQrImages = (operation: Json): Json => {
  const answer = operation.responses?.["200"]
  const content = answer?.content
  if (content !== undefined) {
    answer.headers = {
      "x-qr-expires-at": {
        description: "With an image: when this code stops working",
        schema: { type: "string", format: "date-time" }
      }
    }
    content["image/png"] = {
      schema: {
        type: "string",
        format: "binary",
        description: "The QR code as a 320-pixel PNG image (send Accept: image/png)"
      }
    }
    content["image/svg+xml"] = {
      schema: { type: "string", description: "The QR code as an SVG image (send Accept: image/svg+xml)" }
    }
  }
  return operation
}

/** The media endpoint answers the file itself, in its own type. */
export const withMediaBytes = (operation: Json): Json => {
  const answer = operation.responses?.["200"] ?? operation.responses?.["204"]
  if (answer !== undefined) {
    answer.description = "The file, as the sender sent it"
    answer.content = {
      "application/octet-stream": {
        schema: {
          type: "string",
          format: "binary",
          description: "The file's bytes; Content-Type is the file's own (image/jpeg, audio/ogg, ...)"
        }
      }
    }
  }
  return operation
}

/** The event stream answers Server-Sent Events, and says how to resume in its headers. */
export const withEventStream = (operation: Json): Json => {
  const answer = operation.responses?.["200"]
  if (answer !== undefined) {
    answer.description =
      "The stream, open until the client closes it (or its key is revoked, its customer suspended, the gateway stops)"
    answer.headers = {
      "cache-control": { description: "no-store: nothing of a stream is cached", schema: { type: "string" } },
      "x-accel-buffering": {
        description: "no: proxies that honour it pass each frame on at once",
        schema: { type: "string" }
      }
    }
  }
  return operation
}

/** RFC 9457's members, which every problem carries. */
const problemMembers: Record<string, string> = {
  type: "A URI naming the kind of problem; code says the same for programs",
  status: "The HTTP status, repeated",
  title: "A short summary of the kind of problem",
  detail: "What went wrong this time, and what would work",
  instance: "This occurrence of the problem, when it has one"
}

/** Describes the RFC 9457 members of every problem schema, which the framework declares. */
export const documentProblems = (spec: Json): Json => {
  for (const schema of Object.values(spec.components?.schemas ?? {}) as Array<Json>) {
    const properties = schema.properties as Record<string, Json> | undefined
    if (properties?.type === undefined || properties.code === undefined) continue
    for (const [name, description] of Object.entries(problemMembers)) {
      if (properties[name] !== undefined) properties[name].description ??= description
    }
  }
  return spec
}
