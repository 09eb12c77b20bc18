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

/** A webhook endpoint as queueing deliveries needs it: enabled and not deleted. */
export interface ListeningEndpoint {
  readonly id: string
  readonly customer_id: string
  readonly channel_id: string | null
  readonly event_types: ReadonlyArray<string>
}

/** An event as queueing its deliveries needs it. */
export interface QueuedEvent {
  readonly id: EventId
  readonly customerId: CustomerId
  readonly channelId: ChannelId | null
  readonly type: EventType
  readonly recipients: Recipients
}

/**
 * Whether an endpoint gets the event. A channel's event goes to the channel's endpoints and to the
 * customer's endpoints for every channel; an event of no channel to every endpoint subscribed to its
 * type.
 */
const hears = (endpoint: ListeningEndpoint, event: QueuedEvent) => {
  const { recipients } = event
  if (endpoint.customer_id !== event.customerId) return false
  if (recipients._tag === "Only") return endpoint.id === recipients.endpointId
  if (endpoint.event_types.length > 0 && !endpoint.event_types.includes(event.type)) return false
  if (recipients._tag === "AllBut") {
    return (
      endpoint.id !== recipients.endpointId &&
      (endpoint.channel_id === null || endpoint.channel_id === recipients.channelId)
    )
  }
  return event.channelId === null || endpoint.channel_id === null || endpoint.channel_id === event.channelId
}

/**
 * In the events' own transaction: one delivery per endpoint each event goes to (of `endpoints`, every
 * enabled endpoint of the events' customers), due at once, so an event is never visible without its
 * deliveries; every process's dispatcher woken. One statement, or none when no endpoint listens.
 */
export const queueDeliveries = (
  sql: SqlClient.SqlClient,
  events: ReadonlyArray<QueuedEvent>,
  endpoints: ReadonlyArray<ListeningEndpoint>
) => {
  const queued = events.flatMap((event) =>
    endpoints
      .filter((endpoint) => hears(endpoint, event))
      .map((endpoint) => ({
        d: newId.delivery(),
        c: event.customerId,
        e: endpoint.id,
        v: event.id,
        t: event.type
      }))
  )
  return queued.length === 0
    ? Effect.succeed(0)
    : Effect.as(
        sql`
          WITH queued AS (
            INSERT INTO deliveries (id, customer_id, endpoint_id, event_id, event_type, next_attempt_at)
            SELECT d, c, e, v, t, now() FROM json_to_recordset(${JSON.stringify(queued)}::json)
              AS q(d text, c text, e text, v text, t text)
          )
          SELECT pg_notify(${deliveriesDueChannel}, '')`,
        queued.length
      )
}
