import {
  Config,
  ConfigProvider,
  Context,
  Data,
  Duration,
  Effect,
  Layer,
  Option,
  Redacted,
  Result,
  Schema,
  SchemaGetter,
  SchemaIssue
} from "effect"
// ipaddr.js is CommonJS: under Node's ESM loader only its default export carries the functions
import ipaddr from "ipaddr.js"
import { IpNetwork } from "effect/net"
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
  /**
   * The tables' owner, for migrations, when the gateway serves (`databaseUrl`) as a role of its own
   * that owns nothing and so cannot alter the audit log. Unset: `databaseUrl` migrates and serves.
   */
  readonly migrationDatabaseUrl: Option.Option<Redacted.Redacted<string>>
  readonly dataDir: string
  readonly masterKeys: Option.Option<Redacted.Redacted<string>>
  readonly adminHost: string
  readonly adminPort: number
  readonly adminToken: Option.Option<Redacted.Redacted<string>>
  /** A token that reads /metrics and nothing else, for scrapers (the operator token reads it too). */
  readonly metricsToken: Option.Option<Redacted.Redacted<string>>
  readonly waWsUrl: Option.Option<string>
  readonly waVersion: Option.Option<readonly [number, number, number]>
  /** Where inbound media are downloaded from (host[:port]); WhatsApp's own unless set (tests name the simulator's). */
  readonly waMediaHost: Option.Option<string>
  readonly webhookAllowCidrs: ReadonlyArray<string>
  /** Proxies whose X-Forwarded-For names the client (failed authentications are counted per client). */
  readonly trustedProxies: ReadonlyArray<string>
  readonly nodeId: string
  readonly leaseTtl: Duration.Duration
  readonly messageMaxAge: Duration.Duration
  readonly dispatchConcurrency: number
  readonly dispatchPerEndpoint: number
  /** Webhook attempts one customer's endpoints may have in flight together in this process. */
  readonly dispatchPerCustomer: number
  readonly logLevel: string
  readonly logFormat: "json" | "pretty"
}

export class GatewayConfigService extends Context.Service<GatewayConfigService, GatewayConfig>()(
  "whatisup/GatewayConfig"
) {}

/** Turns text its schema has already checked into a value; configuration is never encoded back. */
const decodeText =
  <To extends Schema.Top>(to: To, decode: (text: string) => To["Encoded"]) =>
  (text: Schema.Codec<string, string>) =>
    text.pipe(
      Schema.decodeTo(to, { decode: SchemaGetter.transform(decode), encode: SchemaGetter.forbiddenEncoding })
    )

const oneOf = <const L extends ReadonlyArray<string>>(...values: L) =>
  Schema.Literals(values).annotate({ message: `expected one of ${values.join(", ")}` })

const wholeNumber = (minimum: number, maximum: number, message: string) =>
  Schema.String.check(Schema.isPattern(/^\d+$/, { message })).pipe(
    Schema.decodeTo(Schema.NumberFromString),
    Schema.check(Schema.isBetween({ minimum, maximum }, { message }))
  )

const PortNumber = wholeNumber(0, 65535, "expected a port number 0-65535")

const urlWith = (protocols: ReadonlyArray<string>, message: string) =>
  Schema.String.check(
    Schema.makeFilter((text: string) => protocols.includes(URL.parse(text)?.protocol ?? ""), { message })
  )

const PostgresUrl = urlWith(["postgres:", "postgresql:"], "expected a postgres:// or postgresql:// URL")

const WebSocketUrl = urlWith(["ws:", "wss:"], "expected a ws:// or wss:// URL")

const listenMessage = 'expected host:port, such as "127.0.0.1:8081"'
const listenPattern = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d+)$/

/** `host:port`, with an IPv6 host in brackets (`[::1]:8081`). */
const Listen = Schema.String.check(Schema.isPattern(listenPattern, { message: listenMessage })).pipe(
  decodeText(
    Schema.Struct({
      host: Schema.String,
      port: Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 65535 }, { message: listenMessage }))
    }),
    (text) => {
      const [, bracketed, plain, port] = listenPattern.exec(text)!
      return { host: (bracketed ?? plain)!, port: Number(port) }
    }
  )
)

const durationPattern = /^(\d+)\s*(ms|s|m|h)?$/
const durationUnits = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const

/** "500ms", "15s", "10m", "24h"; a bare number counts seconds. */
const DurationText = Schema.String.check(
  Schema.isPattern(durationPattern, { message: 'expected a duration such as "15s", "500ms", "10m" or "24h"' })
).pipe(
  decodeText(
    Schema.Duration.check(
      Schema.makeFilter(Duration.isPositive, { message: "expected a duration above zero" })
    ),
    (text) => {
      const [, amount, unit] = durationPattern.exec(text)!
      return Duration.millis(Number(amount) * durationUnits[(unit ?? "s") as keyof typeof durationUnits])
    }
  )
)

const waVersionPattern = /^(\d+)[.,](\d+)[.,](\d+)$/

/** A host name or address, with an optional port: where WhatsApp's media files are. */
const MediaHost = Schema.String.pipe(
  Schema.check(
    Schema.isPattern(/^(?:[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$/iu, {
      message: "expected a host name or address, with an optional :port, such as mmg.whatsapp.net"
    })
  )
)

const WaVersion = Schema.String.check(
  Schema.isPattern(waVersionPattern, {
    message: 'expected a WhatsApp Web version such as "2.3000.1027934701"'
  })
).pipe(
  decodeText(Schema.Tuple([Schema.Number, Schema.Number, Schema.Number]), (text) => {
    const [, major, minor, patch] = waVersionPattern.exec(text)!
    return [Number(major), Number(minor), Number(patch)] as const
  })
)

const Cidr = Schema.String.check(
  Schema.makeFilter(
    (item: string) => ipaddr.isValidCIDR(item) || `"${item}" is not a CIDR range such as 127.0.0.1/32`
  )
)

/** Comma-separated CIDR ranges; blank items are skipped. */
const CidrList = Schema.String.pipe(
  decodeText(Schema.Array(Cidr), (text) =>
    text
      .split(",")
      .map((item) => item.trim())
      .filter((item) => item !== "")
  )
)

const Network = Schema.String.check(
  Schema.makeFilter((item: string) =>
    Result.match(IpNetwork.fromString(item), {
      onSuccess: () => true,
      onFailure: (error) => `"${item}" is not a network such as 10.0.0.0/8 (${error.message})`
    })
  )
)

/** Comma-separated networks such as 10.0.0.0/8; blank items are skipped. */
const NetworkList = Schema.String.pipe(
  decodeText(Schema.Array(Network), (text) =>
    text
      .split(",")
      .map((item) => item.trim())
      .filter((item) => item !== "")
  )
)

const NodeId = Schema.String.check(
  Schema.isPattern(/^[\x21-\x7e]{1,200}$/, { message: "expected 1-200 visible ASCII characters" })
)

const AdminToken = Schema.String.check(Schema.isMinLength(32, { message: "expected at least 32 characters" }))

/** A log level in any case (`info`, `Info`, `INFO`), each named once when refused. */
const logLevelNames = oneOf("trace", "debug", "info", "warn", "error", "fatal", "none")
const LogLevel = Schema.String.pipe(
  // what the text lowers to is checked against the names next
  decodeText(logLevelNames, (text) => text.toLowerCase() as typeof logLevelNames.Encoded)
)

/** Variables whose refused value is described by its length, never echoed. */
const secretVariables: ReadonlySet<string> = new Set([
  "DATABASE_URL",
  "WHATISUP_MIGRATION_DATABASE_URL",
  "WHATISUP_MASTER_KEYS",
  "WHATISUP_ADMIN_TOKEN",
  "WHATISUP_METRICS_TOKEN"
])

const gatewayConfig: Config.Config<GatewayConfig> = Config.all({
  env: Config.schema(oneOf("development", "production"), "WHATISUP_ENV").pipe(
    Config.withDefault("development")
  ),
  host: Config.String("HOST").pipe(Config.withDefault("0.0.0.0")),
  port: Config.schema(PortNumber, "PORT").pipe(Config.withDefault(8080)),
  databaseUrl: Config.option(Config.schema(Schema.Redacted(PostgresUrl), "DATABASE_URL")),
  migrationDatabaseUrl: Config.option(
    Config.schema(Schema.Redacted(PostgresUrl), "WHATISUP_MIGRATION_DATABASE_URL")
  ),
  dataDir: Config.String("WHATISUP_DATA_DIR").pipe(
    Config.withDefault("./.data"),
    Config.map((dir) => path.resolve(dir))
  ),
  masterKeys: Config.option(Config.Redacted("WHATISUP_MASTER_KEYS")),
  admin: Config.schema(Listen, "WHATISUP_ADMIN_LISTEN").pipe(
    Config.withDefault({ host: "127.0.0.1", port: 8081 })
  ),
  adminToken: Config.option(Config.schema(Schema.Redacted(AdminToken), "WHATISUP_ADMIN_TOKEN")),
  metricsToken: Config.option(Config.schema(Schema.Redacted(AdminToken), "WHATISUP_METRICS_TOKEN")),
  waWsUrl: Config.option(Config.schema(WebSocketUrl, "WHATISUP_WA_WS_URL")),
  waVersion: Config.option(Config.schema(WaVersion, "WHATISUP_WA_VERSION")),
  waMediaHost: Config.option(Config.schema(MediaHost, "WHATISUP_WA_MEDIA_HOST")),
  webhookAllowCidrs: Config.schema(CidrList, "WHATISUP_WEBHOOK_ALLOW_CIDRS").pipe(Config.withDefault([])),
  trustedProxies: Config.schema(NetworkList, "WHATISUP_TRUSTED_PROXIES").pipe(Config.withDefault([])),
  nodeId: Config.option(Config.schema(NodeId, "WHATISUP_NODE_ID")),
  leaseTtl: Config.schema(DurationText, "WHATISUP_LEASE_TTL").pipe(Config.withDefault(Duration.seconds(5))),
  messageMaxAge: Config.schema(DurationText, "WHATISUP_MESSAGE_MAX_AGE").pipe(
    Config.withDefault(Duration.hours(24))
  ),
  dispatchConcurrency: Config.schema(
    wholeNumber(1, 10_000, "expected a whole number 1-10000"),
    "WHATISUP_DISPATCH_CONCURRENCY"
  ).pipe(Config.withDefault(64)),
  dispatchPerEndpoint: Config.schema(
    wholeNumber(1, 1_000, "expected a whole number 1-1000"),
    "WHATISUP_DISPATCH_PER_ENDPOINT"
  ).pipe(Config.withDefault(8)),
  dispatchPerCustomer: Config.option(
    Config.schema(wholeNumber(1, 10_000, "expected a whole number 1-10000"), "WHATISUP_DISPATCH_PER_CUSTOMER")
  ),
  logLevel: Config.schema(LogLevel, "LOG_LEVEL").pipe(Config.withDefault("info")),
  logFormat: Config.schema(oneOf("json", "pretty"), "LOG_FORMAT").pipe(Config.withDefault("json"))
}).pipe(
  Config.map(({ admin, nodeId, dispatchPerCustomer, ...config }) => ({
    ...config,
    // by default a quarter of the slots: one customer's slow endpoints cannot hold the others'
    dispatchPerCustomer: Option.getOrElse(dispatchPerCustomer, () =>
      Math.max(config.dispatchPerEndpoint, Math.ceil(config.dispatchConcurrency / 4))
    ),
    adminHost: admin.host,
    adminPort: admin.port,
    // stable across restarts on one host and data dir, so a restarted process takes its leases back at once
    nodeId: Option.getOrElse(nodeId, () => `${os.hostname()}:${config.dataDir}`)
  }))
)

/** Blanks around a value are not part of it, and a value of blanks alone counts as unset. */
const blankAsUnset = (provider: ConfigProvider.ConfigProvider) =>
  ConfigProvider.make((lookup) =>
    Effect.map(provider.load(lookup), (node) => {
      if (node === undefined || node.value === undefined) return node
      const value = node.value.trim()
      switch (node._tag) {
        case "Value":
          return value === "" ? undefined : ConfigProvider.makeValue(value)
        case "Record":
          return ConfigProvider.makeRecord(node.keys, value === "" ? undefined : value)
        case "Array":
          return ConfigProvider.makeArray(node.length, value === "" ? undefined : value)
      }
    })
  )

/** The one place a `ConfigError` becomes the line an operator reads: the variable, what was expected, what was given. */
const refusal = (provider: ConfigProvider.ConfigProvider, error: Config.ConfigError) =>
  Effect.gen(function* () {
    if (error.cause._tag === "SourceError") {
      return new ConfigInvalid({ variable: "configuration", reason: error.cause.message })
    }
    const [issue] = SchemaIssue.makeFormatterStandardSchemaV1()(error.cause.issue).issues
    const segment = issue?.path?.[0]
    const variable = String(typeof segment === "object" ? segment.key : (segment ?? "configuration"))
    const given = yield* provider.load([variable]).pipe(
      Effect.map((node) => node?.value),
      Effect.orElseSucceed(() => undefined)
    )
    const got =
      given === undefined
        ? ""
        : secretVariables.has(variable)
          ? `, got ${given.length} characters (not shown)`
          : `, got ${JSON.stringify(given)}`
    return new ConfigInvalid({ variable, reason: `${issue?.message ?? "invalid value"}${got}` })
  })

export const loadConfig: Effect.Effect<GatewayConfig, ConfigInvalid> = Effect.gen(function* () {
  const provider = blankAsUnset(yield* ConfigProvider.ConfigProvider)
  const config = yield* gatewayConfig
    .parse(provider)
    .pipe(Effect.catch((error) => Effect.flatMap(refusal(provider, error), Effect.fail)))
  if (Option.isSome(config.migrationDatabaseUrl) && Option.isNone(config.databaseUrl)) {
    return yield* new ConfigInvalid({
      variable: "WHATISUP_MIGRATION_DATABASE_URL",
      reason:
        "needs DATABASE_URL, the role the gateway serves as (the embedded database has both roles already)"
    })
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
