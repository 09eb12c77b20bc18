import { Effect, Layer } from "effect"
import { TransportError, WhatsAppTransport } from "./transport.ts"

/** Until a real WhatsApp client is wired in, connecting fails with a reason the customer can read. */
export const layerUnavailableTransport = Layer.succeed(
  WhatsAppTransport,
  WhatsAppTransport.of({
    connect: () =>
      Effect.fail(
        new TransportError({
          reason: "whatsapp_unavailable: this gateway has no WhatsApp client configured",
          retryable: false
        })
      )
  })
)
