import { Effect, Layer, Logger, References } from "effect"
import type { GatewayConfig } from "./config.ts"

const levels = {
  trace: "Trace",
  debug: "Debug",
  info: "Info",
  warn: "Warn",
  error: "Error",
  fatal: "Fatal",
  none: "None"
} as const

/** LOG_LEVEL as the floor below which nothing is logged. */
export const layerMinimumLogLevel = (config: Pick<GatewayConfig, "logLevel">) =>
  Layer.succeed(
    References.MinimumLogLevel,
    levels[config.logLevel.toLowerCase() as keyof typeof levels] ?? "Info"
  )

/**
 * No spans are made: the gateway exports no traces (its logs and /metrics are what it reports), and
 * a span for every request and every SQL statement would be work on the hot paths that nothing reads.
 */
export const layerTracingOff = Layer.succeed(References.TracerEnabled, false)

/** JSON lines by default, human-readable with LOG_FORMAT=pretty; LOG_LEVEL sets the floor. */
export const layerLogging = (config: Pick<GatewayConfig, "logFormat" | "logLevel">) =>
  Layer.mergeAll(
    Logger.layer([config.logFormat === "pretty" ? Logger.consolePretty() : Logger.consoleJson]),
    layerMinimumLogLevel(config)
  )

export const withLogging = (config: Pick<GatewayConfig, "logFormat" | "logLevel">) =>
  Effect.provide(layerLogging(config))
