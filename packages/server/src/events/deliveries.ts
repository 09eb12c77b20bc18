import type { ChannelId, CustomerId, EventId, EventType, WebhookEndpointId } from "@whatisup/domain"
import { Effect } from "effect"
import type { SqlClient } from "effect/sql"
import { newId } from "../db/ids.ts"

/** Wakes every process's dispatcher: deliveries were queued, due at once. */
export const deliveriesDueChannel = "whatisup_deliveries_due"

/** Which endpoints an event goes to: every one that subscribes to it, or one named (a test event), or all but one. */
export type Recipients =
  | { readonly _tag: "Subscribed" }
  | { readonly _tag: "Only"; readonly endpointId: WebhookEndpointId }
  | {
      readonly _tag: "AllBut"
      readonly endpointId: WebhookEndpointId
      /** Whose endpoints may hear of it: the customer's for every channel, and this channel's (null: no channel's). */
      readonly channelId: ChannelId | null
    }

/**
 * In the event's own transaction: one delivery per endpoint the event goes to, due at once, so an
 * event is never visible without its deliveries. A channel's event goes to the channel's endpoints
 * and to the customer's endpoints for every channel.
 */
export const queueDeliveries = (
  sql: SqlClient.SqlClient,
  event: {
    readonly id: EventId
    readonly customerId: CustomerId
    readonly channelId: ChannelId | null
    readonly type: EventType
    readonly recipients: Recipients
  }
) =>
  Effect.gen(function* () {
    const { recipients } = event
    const endpoints = yield* sql<{ id: string }>`
      SELECT id FROM webhook_endpoints
      WHERE customer_id = ${event.customerId} AND deleted_at IS NULL AND enabled
        ${
          recipients._tag === "Only"
            ? sql`AND id = ${recipients.endpointId}`
            : sql`AND (cardinality(event_types) = 0 OR ${event.type} = ANY(event_types))
                ${recipients._tag === "AllBut" ? sql`AND id <> ${recipients.endpointId}` : sql``}
                ${
                  recipients._tag === "AllBut"
                    ? sql`AND (channel_id IS NULL ${recipients.channelId === null ? sql`` : sql`OR channel_id = ${recipients.channelId}`})`
                    : event.channelId === null
                      ? sql``
                      : sql`AND (channel_id IS NULL OR channel_id = ${event.channelId})`
                }`
        }`
    if (endpoints.length === 0) return 0
    const ids = endpoints.map(() => newId.delivery())
    yield* sql`
      INSERT INTO deliveries (id, customer_id, endpoint_id, event_id, event_type, next_attempt_at)
      SELECT delivery, ${event.customerId}, endpoint, ${event.id}, ${event.type}, now()
      FROM unnest(${ids}::text[], ${endpoints.map((endpoint) => endpoint.id)}::text[]) AS queued (delivery, endpoint)`
    yield* sql`SELECT pg_notify(${deliveriesDueChannel}, '')`
    return ids.length
  })
