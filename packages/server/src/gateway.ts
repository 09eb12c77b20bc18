import { Layer } from "effect"
import { layerChannels } from "./channels/channels.ts"
import { layerEventLog } from "./events/eventLog.ts"
import { layerEventStreams } from "./events/eventStreams.ts"
import { layerChannelMessaging } from "./messages/channelMessaging.ts"
import { layerInbox } from "./messages/inbox.ts"
import { layerMessageIntake } from "./messages/intake.ts"
import { layerMediaFetcher } from "./messages/mediaFetch.ts"
import { layerMessageLog } from "./messages/messageLog.ts"
import { layerOutbox } from "./messages/outbox.ts"
import { layerOutboxSignal } from "./messages/outboxSignal.ts"
import { layerLeases } from "./channels/leases.ts"
import { layerChannelLifecycle } from "./channels/lifecycle.ts"
import { layerSupervisor } from "./channels/supervisor.ts"
import { layerAuthStates } from "./whatsapp/authState.ts"
import type { WhatsAppTransport } from "./channels/transport.ts"
import { layerBaileysTransport } from "./whatsapp/baileysTransport.ts"
import { layerAdminServer } from "./admin/server.ts"
import { layerAudit } from "./audit/audit.ts"
import { type GatewayConfig, GatewayConfigService } from "./config/config.ts"
import { layerTracingOff } from "./config/logging.ts"
import { layerPortsFree } from "./config/ports.ts"
import { layerKeyRing } from "./crypto/keyRing.ts"
import { layerDatabase, layerMigrated } from "./db/client.ts"
import { layerIdempotency } from "./http/idempotency.ts"
import { layerPublicServer } from "./http/server.ts"
import { layerApiKeys } from "./tenancy/apiKeys.ts"
import { layerAuthentication } from "./tenancy/authentication.ts"
import { layerCustomers } from "./tenancy/customers.ts"
import { layerDeliveryLog } from "./webhooks/deliveryLog.ts"
import { layerDestinationClient } from "./webhooks/destinationClient.ts"
import { layerDispatcher } from "./webhooks/dispatcher.ts"
import { layerWebhookEndpoints } from "./webhooks/endpoints.ts"
import { layerResolver, layerSsrfGuard } from "./webhooks/ssrfGuard.ts"

/** The whole gateway for one configuration: database (migrated first), services, both listeners. */
export const layerGateway = <E = never>(
  config: GatewayConfig,
  /** WhatsApp: Baileys unless a test swaps in a scripted one. */
  transport: Layer.Layer<WhatsAppTransport, E, GatewayConfigService> = layerBaileysTransport as Layer.Layer<
    WhatsAppTransport,
    E,
    GatewayConfigService
  >
) => {
  const layerConfig = Layer.succeed(GatewayConfigService, config)
  const database = layerMigrated.pipe(
    Layer.provideMerge(layerDatabase),
    Layer.provide(layerConfig),
    // a port in use stops start-up before the database is created or migrated
    Layer.provide(layerPortsFree(config))
  )
  const channels = layerSupervisor.pipe(
    Layer.provideMerge(Layer.mergeAll(layerChannels, layerChannelLifecycle)),
    Layer.provideMerge(layerAuthStates),
    Layer.provideMerge(
      layerChannelMessaging.pipe(
        Layer.provideMerge(Layer.mergeAll(layerOutbox, layerInbox, layerOutboxSignal, layerMediaFetcher))
      )
    ),
    Layer.provideMerge(Layer.mergeAll(layerEventLog, layerLeases, transport.pipe(Layer.provide(layerConfig))))
  )
  const webhooks = Layer.mergeAll(layerWebhookEndpoints, layerDeliveryLog, layerDispatcher).pipe(
    Layer.provideMerge(layerDestinationClient)
  )
  const messages = Layer.mergeAll(layerMessageIntake, layerMessageLog)
  const services = Layer.mergeAll(
    layerApiKeys,
    layerCustomers,
    channels,
    webhooks,
    messages,
    layerEventStreams
  ).pipe(
    Layer.provideMerge(
      Layer.mergeAll(layerAudit, layerAuthentication, layerIdempotency, layerEventLog, layerSsrfGuard)
    ),
    Layer.provideMerge(layerResolver),
    Layer.provideMerge(layerKeyRing),
    Layer.provideMerge(database),
    Layer.provideMerge(layerConfig),
    Layer.provideMerge(layerTracingOff)
  )
  return Layer.mergeAll(layerPublicServer, layerAdminServer).pipe(Layer.provideMerge(services))
}
