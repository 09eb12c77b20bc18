import { startControlServer } from "./control.ts"
import type { SimulatorLogger } from "./logger.ts"
import { startSimulator } from "./server.ts"

/** A port from the environment: 0 (a free port) when unset. */
const portFrom = (name: string): number => {
  const text = process.env[name] ?? "0"
  const port = Number(text)
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    process.stderr.write(`${name} must be a port number (0 for any free port), not ${JSON.stringify(text)}\n`)
    process.exit(1)
  }
  return port
}

/** Stanza-level logs as JSON lines on stderr when `WA_SIM_LOG=debug`; stdout carries only the URLs. */
const stderrLogger = (level: string | undefined): SimulatorLogger => {
  const write = (at: string) => (obj: object, msg?: string) =>
    process.stderr.write(`${JSON.stringify({ level: at, msg, ...obj })}\n`)
  return {
    debug: level === "debug" ? write("debug") : () => {},
    warn: write("warn"),
    isLevelEnabled: (at) => at !== "debug" || level === "debug"
  }
}

const simulator = await startSimulator({
  port: portFrom("WA_SIM_PORT"),
  host: process.env.WA_SIM_HOST ?? "127.0.0.1",
  logger: stderrLogger(process.env.WA_SIM_LOG),
  // As WhatsApp does: a second login of a device closes the older connection with 440 (see SimulatorOptions).
  replaceConnections: process.env.WA_SIM_REPLACE_CONNECTIONS === "1"
})
const control = await startControlServer(simulator, portFrom("WA_SIM_CONTROL_PORT"))
process.stdout.write(
  `${JSON.stringify({ url: simulator.url, control_url: control.url, media_host: simulator.mediaHost })}\n`
)

const shutdown = () => {
  void Promise.all([control.close(), simulator.close()]).then(() => process.exit(0))
}
process.once("SIGINT", shutdown)
process.once("SIGTERM", shutdown)
