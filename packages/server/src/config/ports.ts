import { Effect, Layer } from "effect"
import * as net from "node:net"
import { ConfigInvalid, type GatewayConfig } from "./config.ts"

/** Refuses, naming its variable, a port that cannot be listened on (another process has it). */
const probe = (variable: string, host: string, port: number) =>
  Effect.callback<void, ConfigInvalid>((resume) => {
    const server = net.createServer()
    server.once("error", (error: NodeJS.ErrnoException) =>
      resume(
        Effect.fail(
          new ConfigInvalid({
            variable,
            reason:
              error.code === "EADDRINUSE"
                ? `${host}:${port} is already in use by another process; stop it, or set ${variable} to a free port`
                : `cannot listen on ${host}:${port} (${error.code ?? error.message})`
          })
        )
      )
    )
    server.listen({ host, port, exclusive: true }, () => server.close(() => resume(Effect.void)))
  })

/**
 * Both listeners' ports are free: checked before the database is started or migrated, so a port
 * in use stops start-up at once with one line. (They are bound for good once the services exist.)
 */
export const layerPortsFree = (config: GatewayConfig) =>
  Layer.effectDiscard(
    Effect.andThen(
      probe("PORT", config.host, config.port),
      probe("WHATISUP_ADMIN_LISTEN", config.adminHost, config.adminPort)
    )
  )
