import type { ChannelId, DeliveryId, WebhookEndpointId } from "@whatisup/domain"
import { Data } from "effect"

/** No endpoint with this id is visible to the caller (deleted, another customer's or channel's, or never made). */
export class WebhookEndpointNotFound extends Data.TaggedError("WebhookEndpointNotFound")<{
  readonly endpointId: WebhookEndpointId
}> {}

/** No delivery with this id is visible to the caller. */
export class DeliveryNotFound extends Data.TaggedError("DeliveryNotFound")<{
  readonly deliveryId: DeliveryId
}> {}

/** The endpoint's URL may not be posted to: `reason` is the guard's code, `detail` says why in words. */
export class WebhookUrlRefused extends Data.TaggedError("WebhookUrlRefused")<{
  readonly reason: string
  readonly detail: string
}> {}

/** The endpoint is disabled, and what was asked needs it enabled (a test event). */
export class WebhookEndpointDisabled extends Data.TaggedError("WebhookEndpointDisabled")<{
  readonly endpointId: WebhookEndpointId
}> {}

/** A replayed create would show a secret that no longer signs (the endpoint was deleted or rotated since). */
export class CreatedSecretReplaced extends Data.TaggedError("CreatedSecretReplaced")<{
  readonly endpointId: WebhookEndpointId
}> {}

/** The channel an endpoint is for is not visible to the caller. */
export class EndpointChannelNotFound extends Data.TaggedError("EndpointChannelNotFound")<{
  readonly channelId: ChannelId
}> {}

/** An attempt of the delivery is in flight: it is sent again only once that attempt has ended. */
export class DeliveryInFlight extends Data.TaggedError("DeliveryInFlight")<{
  readonly deliveryId: DeliveryId
}> {}
