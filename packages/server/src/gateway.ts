import { Layer } from "effect"
import { layerAdminServer } from "./admin/server.ts"
import { layerAudit } from "./audit/audit.ts"
import { type GatewayConfig, GatewayConfigService } from "./config.ts"
import { layerKeyRing } from "./crypto/keyRing.ts"
import { layerDatabase, layerMigrated } from "./db/client.ts"
import { layerIdempotency } from "./http/idempotency.ts"
import { layerPublicServer } from "./http/server.ts"
import { layerApiKeys } from "./tenancy/apiKeys.ts"
import { layerAuthentication } from "./tenancy/authentication.ts"
import { layerCustomers } from "./tenancy/customers.ts"

/** The whole gateway for one configuration: database (migrated first), services, both listeners. */
export const layerGateway = (config: GatewayConfig) => {
  const layerConfig = Layer.succeed(GatewayConfigService, config)
  const database = layerMigrated.pipe(Layer.provideMerge(layerDatabase), Layer.provide(layerConfig))
  const services = Layer.mergeAll(layerApiKeys, layerCustomers).pipe(
    Layer.provideMerge(Layer.mergeAll(layerAudit, layerAuthentication, layerIdempotency)),
    Layer.provideMerge(layerKeyRing),
    Layer.provideMerge(database),
    Layer.provideMerge(layerConfig)
  )
  return Layer.mergeAll(layerPublicServer, layerAdminServer).pipe(Layer.provideMerge(services))
}
