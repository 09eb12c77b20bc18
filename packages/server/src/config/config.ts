import { Config, Context, Data, Duration, Effect, Layer, Option, Redacted } from "effect"
import * as ipaddr from "ipaddr.js"
import * as os from "node:os"
import * as path from "node:path"

/** A variable that stops start-up; its message is the one line an operator reads. */
export class ConfigInvalid extends Data.TaggedError("ConfigInvalid")<{
  readonly variable: string
  readonly reason: string
}> {
  override get message() {
    return `${this.variable}: ${this.reason}`
  }
}

export interface GatewayConfig {
  readonly env: "development" | "production"
  readonly host: string
  readonly port: number
  readonly databaseUrl: Option.Option<Redacted.Redacted<string>>
  readonly dataDir: string
  readonly masterKeys: Option.Option<Redacted.Redacted<string>>
  readonly adminHost: string
  readonly adminPort: number
  readonly adminToken: Option.Option<Redacted.Redacted<string>>
  readonly waWsUrl: Option.Option<string>
  readonly waVersion: Option.Option<readonly [number, number, number]>
  readonly webhookAllowCidrs: ReadonlyArray<string>
  readonly nodeId: string
  readonly leaseTtl: Duration.Duration
  readonly messageMaxAge: Duration.Duration
  readonly dispatchConcurrency: number
  readonly dispatchPerEndpoint: number
  readonly logLevel: string
  readonly logFormat: "json" | "pretty"
}

export class GatewayConfigService extends Context.Service<GatewayConfigService, GatewayConfig>()(
  "whatisup/GatewayConfig"
) {}

const raw = (name: string) =>
  Config.option(Config.String(name)).pipe(
    Effect.map(Option.filter((value) => value.trim() !== "")),
    Effect.mapError((error) => new ConfigInvalid({ variable: name, reason: error.message }))
  )

const check = <A>(name: string, fallback: A, parse: (value: string) => { ok: A } | { error: string }) =>
  Effect.flatMap(raw(name), (value) => {
    if (Option.isNone(value)) return Effect.succeed(fallback)
    const result = parse(value.value.trim())
    return "ok" in result
      ? Effect.succeed(result.ok)
      : Effect.fail(
          new ConfigInvalid({ variable: name, reason: `${result.error}, got ${JSON.stringify(value.value)}` })
        )
  })

const portNumber = (value: string) => {
  const n = Number(value)
  return /^\d+$/.test(value) && n >= 0 && n <= 65535 ? { ok: n } : { error: "expected a port number 0-65535" }
}

const positiveInt = (max: number) => (value: string) => {
  const n = Number(value)
  return /^\d+$/.test(value) && n >= 1 && n <= max ? { ok: n } : { error: `expected a whole number 1-${max}` }
}

const duration = (value: string) => {
  const match = /^(\d+)\s*(ms|s|m|h)?$/.exec(value)
  if (!match) return { error: 'expected a duration such as "15s", "500ms", "10m" or "24h"' }
  const n = Number(match[1])
  const unit = match[2] ?? "s"
  const millis = unit === "ms" ? n : unit === "s" ? n * 1000 : unit === "m" ? n * 60_000 : n * 3_600_000
  return millis > 0 ? { ok: Duration.millis(millis) } : { error: "expected a duration above zero" }
}

const listen = (value: string) => {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d+)$/.exec(value)
  const host = match?.[1] ?? match?.[2]
  const port = match ? portNumber(match[3]!) : undefined
  return host && port && "ok" in port
    ? { ok: { host, port: port.ok } }
    : { error: 'expected host:port, such as "127.0.0.1:8081"' }
}

const cidrs = (value: string) => {
  const items = value
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "")
  for (const item of items) {
    try {
      ipaddr.parseCIDR(item)
    } catch {
      return { error: `"${item}" is not a CIDR range such as 127.0.0.1/32` }
    }
  }
  return { ok: items }
}

const waVersion = (value: string) => {
  const match = /^(\d+)[.,](\d+)[.,](\d+)$/.exec(value)
  return match
    ? { ok: Option.some([Number(match[1]), Number(match[2]), Number(match[3])] as const) }
    : { error: 'expected a WhatsApp Web version such as "2.3000.1027934701"' }
}

const databaseUrl = (value: string) => {
  try {
    const url = new URL(value)
    return url.protocol === "postgres:" || url.protocol === "postgresql:"
      ? { ok: Option.some(Redacted.make(value)) }
      : { error: "expected a postgres:// or postgresql:// URL" }
  } catch {
    return { error: "expected a postgres:// or postgresql:// URL" }
  }
}

const wsUrl = (value: string) => {
  try {
    const url = new URL(value)
    return url.protocol === "ws:" || url.protocol === "wss:"
      ? { ok: Option.some(value) }
      : { error: "expected a ws:// or wss:// URL" }
  } catch {
    return { error: "expected a ws:// or wss:// URL" }
  }
}

const oneOf =
  <const L extends string>(...values: ReadonlyArray<L>) =>
  (value: string) =>
    (values as ReadonlyArray<string>).includes(value)
      ? { ok: value as L }
      : { error: `expected one of ${values.join(", ")}` }

const secret = (value: string) => ({ ok: Option.some(Redacted.make(value)) })

export const loadConfig: Effect.Effect<GatewayConfig, ConfigInvalid> = Effect.gen(function* () {
  const dataDir = path.resolve(yield* check("WHATISUP_DATA_DIR", "./.data", (value) => ({ ok: value })))
  const admin = yield* check("WHATISUP_ADMIN_LISTEN", { host: "127.0.0.1", port: 8081 }, listen)
  const config: GatewayConfig = {
    env: yield* check("WHATISUP_ENV", "development" as const, oneOf("development", "production")),
    host: yield* check("HOST", "0.0.0.0", (value) => ({ ok: value })),
    port: yield* check("PORT", 8080, portNumber),
    databaseUrl: yield* check("DATABASE_URL", Option.none(), databaseUrl),
    dataDir,
    masterKeys: yield* check("WHATISUP_MASTER_KEYS", Option.none(), secret),
    adminHost: admin.host,
    adminPort: admin.port,
    adminToken: yield* check("WHATISUP_ADMIN_TOKEN", Option.none(), (value) =>
      value.length >= 32 ? secret(value) : { error: "expected at least 32 characters" }
    ),
    waWsUrl: yield* check("WHATISUP_WA_WS_URL", Option.none(), wsUrl),
    waVersion: yield* check("WHATISUP_WA_VERSION", Option.none(), waVersion),
    webhookAllowCidrs: yield* check("WHATISUP_WEBHOOK_ALLOW_CIDRS", [], cidrs),
    nodeId: yield* check("WHATISUP_NODE_ID", `${os.hostname()}:${dataDir}`, (value) =>
      /^[\x21-\x7e]{1,200}$/.test(value)
        ? { ok: value }
        : { error: "expected 1-200 visible ASCII characters" }
    ),
    leaseTtl: yield* check("WHATISUP_LEASE_TTL", Duration.seconds(15), duration),
    messageMaxAge: yield* check("WHATISUP_MESSAGE_MAX_AGE", Duration.hours(24), duration),
    dispatchConcurrency: yield* check("WHATISUP_DISPATCH_CONCURRENCY", 64, positiveInt(10_000)),
    dispatchPerEndpoint: yield* check("WHATISUP_DISPATCH_PER_ENDPOINT", 8, positiveInt(1_000)),
    logLevel: yield* check(
      "LOG_LEVEL",
      "Info" as string,
      oneOf(
        "trace",
        "debug",
        "info",
        "warn",
        "error",
        "fatal",
        "none",
        "Trace",
        "Debug",
        "Info",
        "Warn",
        "Error",
        "Fatal",
        "None"
      )
    ),
    logFormat: yield* check("LOG_FORMAT", "json" as const, oneOf("json", "pretty"))
  }
  if (config.env === "production" && Option.isNone(config.masterKeys)) {
    return yield* new ConfigInvalid({
      variable: "WHATISUP_MASTER_KEYS",
      reason: "required when WHATISUP_ENV=production"
    })
  }
  if (config.env === "production" && Option.isNone(config.adminToken)) {
    return yield* new ConfigInvalid({
      variable: "WHATISUP_ADMIN_TOKEN",
      reason: "required when WHATISUP_ENV=production"
    })
  }
  return config
})

export const layerConfig = Layer.effect(GatewayConfigService, loadConfig)
