import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Option, Redacted } from "effect"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { type ConfigInvalid, loadConfig } from "../src/config/config.ts"
import { runUnderNode } from "./support/nodeLoader.ts"

const load = (env: Record<string, string>) =>
  loadConfig.pipe(Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnvRecord(env)))

const refusal = (env: Record<string, string>) => Effect.flip(load(env))

/** A refusal names its variable, on one line an operator can act on. */
const expectRefused = (refused: ConfigInvalid, variable: string, reason: RegExp) => {
  expect(refused._tag).toBe("ConfigInvalid")
  expect(refused.variable).toBe(variable)
  expect(refused.reason).toMatch(reason)
  expect(refused.message).toBe(`${variable}: ${refused.reason}`)
  expect(refused.message).not.toContain("\n")
}

const adminToken = "t".repeat(32)

const configModule = pathToFileURL(path.resolve(import.meta.dirname, "../src/config/config.ts")).href

/**
 * Loads the configuration in a child process under Node's own ESM loader, which the gateway runs on:
 * vitest's module loader smooths over CommonJS interop that Node does not.
 */
const loadUnderNode = (env: Record<string, string>) =>
  runUnderNode(
    [
      `import { Effect } from "effect"`,
      `import { loadConfig } from ${JSON.stringify(configModule)}`,
      `const answer = await Effect.runPromise(Effect.match(loadConfig, {`,
      `  onFailure: (refused) => ({ refused: refused.message }),`,
      `  onSuccess: (config) => ({ webhookAllowCidrs: config.webhookAllowCidrs })`,
      `}))`,
      `console.log(JSON.stringify(answer))`
    ],
    env
  )

describe("gateway configuration", () => {
  it.effect("with nothing set, every variable takes its default", () =>
    Effect.gen(function* () {
      const config = yield* load({})
      const dataDir = path.resolve("./.data")
      expect(config).toMatchObject({
        env: "development",
        host: "0.0.0.0",
        port: 8080,
        dataDir,
        adminHost: "127.0.0.1",
        adminPort: 8081,
        webhookAllowCidrs: [],
        trustedProxies: [],
        nodeId: `${os.hostname()}:${dataDir}`,
        dispatchConcurrency: 64,
        dispatchPerEndpoint: 8,
        dispatchPerCustomer: 16,
        logLevel: "info",
        logFormat: "json"
      })
      expect(Option.isNone(config.databaseUrl)).toBe(true)
      expect(Option.isNone(config.masterKeys)).toBe(true)
      expect(Option.isNone(config.adminToken)).toBe(true)
      expect(Option.isNone(config.waWsUrl)).toBe(true)
      expect(Option.isNone(config.waVersion)).toBe(true)
      expect(Duration.toMillis(config.leaseTtl)).toBe(5_000)
      expect(Duration.toMillis(config.messageMaxAge)).toBe(24 * 3_600_000)
    })
  )

  it.effect("every variable is read when set", () =>
    Effect.gen(function* () {
      const config = yield* load({
        WHATISUP_ENV: "production",
        HOST: "127.0.0.1",
        PORT: "0",
        DATABASE_URL: "postgresql://postgres@127.0.0.1:5432/whatisup",
        WHATISUP_MIGRATION_DATABASE_URL: "postgresql://owner@127.0.0.1:5432/whatisup",
        WHATISUP_DATA_DIR: "/var/lib/whatisup",
        WHATISUP_MASTER_KEYS: "k1:c2VjcmV0",
        WHATISUP_ADMIN_LISTEN: "0.0.0.0:9090",
        WHATISUP_ADMIN_TOKEN: adminToken,
        WHATISUP_METRICS_TOKEN: `${adminToken}-metrics`,
        WHATISUP_WA_WS_URL: "wss://web.whatsapp.com/ws/chat",
        WHATISUP_WA_VERSION: "2.3000.1027934701",
        WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32,::1/128",
        WHATISUP_TRUSTED_PROXIES: "10.0.0.0/8, fd00::/8",
        WHATISUP_NODE_ID: "node-a",
        WHATISUP_LEASE_TTL: "500ms",
        WHATISUP_MESSAGE_MAX_AGE: "10m",
        WHATISUP_DISPATCH_CONCURRENCY: "10000",
        WHATISUP_DISPATCH_PER_ENDPOINT: "1",
        WHATISUP_DISPATCH_PER_CUSTOMER: "3",
        LOG_LEVEL: "DEBUG",
        LOG_FORMAT: "pretty"
      })
      expect(config).toMatchObject({
        env: "production",
        host: "127.0.0.1",
        port: 0,
        dataDir: "/var/lib/whatisup",
        adminHost: "0.0.0.0",
        adminPort: 9090,
        waWsUrl: Option.some("wss://web.whatsapp.com/ws/chat"),
        waVersion: Option.some([2, 3000, 1027934701]),
        webhookAllowCidrs: ["127.0.0.1/32", "::1/128"],
        trustedProxies: ["10.0.0.0/8", "fd00::/8"],
        nodeId: "node-a",
        dispatchConcurrency: 10_000,
        dispatchPerEndpoint: 1,
        dispatchPerCustomer: 3,
        logLevel: "debug",
        logFormat: "pretty"
      })
      expect(Option.map(config.databaseUrl, Redacted.value)).toEqual(
        Option.some("postgresql://postgres@127.0.0.1:5432/whatisup")
      )
      expect(Option.map(config.migrationDatabaseUrl, Redacted.value)).toEqual(
        Option.some("postgresql://owner@127.0.0.1:5432/whatisup")
      )
      expect(Option.map(config.masterKeys, Redacted.value)).toEqual(Option.some("k1:c2VjcmV0"))
      expect(Option.map(config.adminToken, Redacted.value)).toEqual(Option.some(adminToken))
      expect(Option.map(config.metricsToken, Redacted.value)).toEqual(Option.some(`${adminToken}-metrics`))
      expect(Duration.toMillis(config.leaseTtl)).toBe(500)
      expect(Duration.toMillis(config.messageMaxAge)).toBe(600_000)
    })
  )

  it.effect("an empty or blank value counts as unset, and blanks around a value are dropped", () =>
    Effect.gen(function* () {
      const blank = yield* load({
        PORT: "",
        HOST: "   ",
        WHATISUP_ENV: " ",
        WHATISUP_ADMIN_LISTEN: "\t",
        WHATISUP_ADMIN_TOKEN: "",
        WHATISUP_WEBHOOK_ALLOW_CIDRS: "  ",
        WHATISUP_LEASE_TTL: " ",
        LOG_FORMAT: ""
      })
      expect(blank).toMatchObject({
        port: 8080,
        host: "0.0.0.0",
        env: "development",
        adminHost: "127.0.0.1",
        adminPort: 8081,
        webhookAllowCidrs: [],
        trustedProxies: [],
        logFormat: "json"
      })
      expect(Option.isNone(blank.adminToken)).toBe(true)
      expect(Duration.toMillis(blank.leaseTtl)).toBe(5_000)
      const padded = yield* load({ PORT: " 9000 ", LOG_FORMAT: " pretty\n" })
      expect(padded.port).toBe(9000)
      expect(padded.logFormat).toBe("pretty")
    })
  )

  it.effect(
    "each kind of bad value is refused on one line naming its variable, what was expected and what was given",
    () =>
      Effect.gen(function* () {
        const cases: Array<[Record<string, string>, string, RegExp]> = [
          [{ PORT: "eighty" }, "PORT", /^expected a port number 0-65535, got "eighty"$/],
          [{ PORT: "65536" }, "PORT", /^expected a port number 0-65535, got "65536"$/],
          [{ PORT: "80.5" }, "PORT", /^expected a port number/],
          [
            { DATABASE_URL: "mysql://x" },
            "DATABASE_URL",
            /^expected a postgres:\/\/ or postgresql:\/\/ URL, got/
          ],
          [{ DATABASE_URL: "not a url" }, "DATABASE_URL", /^expected a postgres:\/\/ or postgresql:\/\/ URL/],
          [
            { WHATISUP_ENV: "staging" },
            "WHATISUP_ENV",
            /^expected one of development, production, got "staging"$/
          ],
          [{ WHATISUP_ADMIN_LISTEN: "8081" }, "WHATISUP_ADMIN_LISTEN", /^expected host:port.*, got "8081"$/],
          [{ WHATISUP_ADMIN_LISTEN: "127.0.0.1:70000" }, "WHATISUP_ADMIN_LISTEN", /^expected host:port/],
          [{ WHATISUP_ADMIN_LISTEN: "::1:8081" }, "WHATISUP_ADMIN_LISTEN", /^expected host:port/],
          [
            { WHATISUP_MIGRATION_DATABASE_URL: "postgresql://owner@db/whatisup" },
            "WHATISUP_MIGRATION_DATABASE_URL",
            /^needs DATABASE_URL/
          ],
          [
            { DATABASE_URL: "postgresql://gw@db/w", WHATISUP_MIGRATION_DATABASE_URL: "mysql://owner@db/w" },
            "WHATISUP_MIGRATION_DATABASE_URL",
            /^expected a postgres:\/\/ or postgresql:\/\/ URL, got 18 characters \(not shown\)$/
          ],
          [
            { WHATISUP_ADMIN_TOKEN: "too-short" },
            "WHATISUP_ADMIN_TOKEN",
            /^expected at least 32 characters, got 9/
          ],
          [
            { WHATISUP_WA_WS_URL: "https://web.whatsapp.com" },
            "WHATISUP_WA_WS_URL",
            /^expected a ws:\/\/ or wss:\/\/ URL/
          ],
          [{ WHATISUP_WA_VERSION: "2.3000" }, "WHATISUP_WA_VERSION", /^expected a WhatsApp Web version/],
          [
            { WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32,nonsense" },
            "WHATISUP_WEBHOOK_ALLOW_CIDRS",
            /^"nonsense" is not a CIDR range such as 127\.0\.0\.1\/32, got "127\.0\.0\.1\/32,nonsense"$/
          ],
          [
            { WHATISUP_WEBHOOK_ALLOW_CIDRS: "10.0.0.0/99" },
            "WHATISUP_WEBHOOK_ALLOW_CIDRS",
            /is not a CIDR range/
          ],
          [
            { WHATISUP_TRUSTED_PROXIES: "10.0.0.1/8" },
            "WHATISUP_TRUSTED_PROXIES",
            /^"10\.0\.0\.1\/8" is not a network such as 10\.0\.0\.0\/8 \(address has non-zero host bits\)/
          ],
          [{ WHATISUP_NODE_ID: "node a" }, "WHATISUP_NODE_ID", /^expected 1-200 visible ASCII characters/],
          [
            { WHATISUP_LEASE_TTL: "soon" },
            "WHATISUP_LEASE_TTL",
            /^expected a duration such as "15s".*, got "soon"$/
          ],
          [{ WHATISUP_LEASE_TTL: "1.5s" }, "WHATISUP_LEASE_TTL", /^expected a duration such as/],
          [{ WHATISUP_MESSAGE_MAX_AGE: "0h" }, "WHATISUP_MESSAGE_MAX_AGE", /^expected a duration above zero/],
          [
            { WHATISUP_DISPATCH_CONCURRENCY: "0" },
            "WHATISUP_DISPATCH_CONCURRENCY",
            /^expected a whole number 1-10000/
          ],
          [
            { WHATISUP_DISPATCH_PER_ENDPOINT: "1001" },
            "WHATISUP_DISPATCH_PER_ENDPOINT",
            /^expected a whole number 1-1000/
          ],
          [
            { LOG_LEVEL: "verbose" },
            "LOG_LEVEL",
            /^expected one of trace, debug, info, warn, error, fatal, none, got "verbose"$/
          ],
          [{ LOG_FORMAT: "xml" }, "LOG_FORMAT", /^expected one of json, pretty, got "xml"$/]
        ]
        for (const [env, variable, reason] of cases) {
          expectRefused(yield* refusal(env), variable, reason)
        }
      })
  )

  it.effect("a refused secret is described by its length, never echoed", () =>
    Effect.gen(function* () {
      const token = yield* refusal({ WHATISUP_ADMIN_TOKEN: "hunter2" })
      expectRefused(token, "WHATISUP_ADMIN_TOKEN", /got 7 characters/)
      expect(token.message).not.toContain("hunter2")
      const metrics = yield* refusal({ WHATISUP_METRICS_TOKEN: "hunter2" })
      expectRefused(metrics, "WHATISUP_METRICS_TOKEN", /got 7 characters/)
      expect(metrics.message).not.toContain("hunter2")
      const database = yield* refusal({ DATABASE_URL: "mysql://root:hunter2@db/app" })
      expectRefused(database, "DATABASE_URL", /^expected a postgres/)
      expect(database.message).not.toContain("hunter2")
    })
  )

  it.effect("production requires the master keys and the admin token", () =>
    Effect.gen(function* () {
      expectRefused(
        yield* refusal({ WHATISUP_ENV: "production", WHATISUP_ADMIN_TOKEN: adminToken }),
        "WHATISUP_MASTER_KEYS",
        /^required when WHATISUP_ENV=production$/
      )
      expectRefused(
        yield* refusal({ WHATISUP_ENV: "production", WHATISUP_MASTER_KEYS: "k1:c2VjcmV0" }),
        "WHATISUP_ADMIN_TOKEN",
        /^required when WHATISUP_ENV=production$/
      )
      expectRefused(
        yield* refusal({
          WHATISUP_ENV: "production",
          WHATISUP_MASTER_KEYS: " ",
          WHATISUP_ADMIN_TOKEN: adminToken
        }),
        "WHATISUP_MASTER_KEYS",
        /^required/
      )
      const development = yield* load({})
      expect(development.env).toBe("development")
    })
  )

  it.effect("durations take ms, s, m or h, and a bare number counts seconds", () =>
    Effect.gen(function* () {
      const cases: Array<[string, number]> = [
        ["500ms", 500],
        ["15s", 15_000],
        ["15", 15_000],
        ["10m", 600_000],
        ["24h", 86_400_000],
        ["30 s", 30_000]
      ]
      for (const [text, millis] of cases) {
        const config = yield* load({ WHATISUP_LEASE_TTL: text, WHATISUP_MESSAGE_MAX_AGE: text })
        expect(Duration.toMillis(config.leaseTtl), text).toBe(millis)
        expect(Duration.toMillis(config.messageMaxAge), text).toBe(millis)
      }
    })
  )

  it.effect("the admin listener takes host:port, with an IPv6 host in brackets", () =>
    Effect.gen(function* () {
      const cases: Array<[string, string, number]> = [
        ["127.0.0.1:8081", "127.0.0.1", 8081],
        ["localhost:0", "localhost", 0],
        ["[::1]:9000", "::1", 9000],
        ["[::ffff:127.0.0.1]:65535", "::ffff:127.0.0.1", 65535]
      ]
      for (const [text, host, port] of cases) {
        const config = yield* load({ WHATISUP_ADMIN_LISTEN: text })
        expect([config.adminHost, config.adminPort], text).toEqual([host, port])
      }
    })
  )

  it.effect("webhook allow-list CIDRs are parsed: IPv4 and IPv6 ranges accepted, blank items skipped", () =>
    Effect.gen(function* () {
      const config = yield* load({ WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32,::1/128" })
      expect(config.webhookAllowCidrs).toEqual(["127.0.0.1/32", "::1/128"])
      const spaced = yield* load({ WHATISUP_WEBHOOK_ALLOW_CIDRS: " 10.0.0.0/8 , ,fd00::/8, " })
      expect(spaced.webhookAllowCidrs).toEqual(["10.0.0.0/8", "fd00::/8"])
      expectRefused(
        yield* refusal({ WHATISUP_WEBHOOK_ALLOW_CIDRS: "nonsense" }),
        "WHATISUP_WEBHOOK_ALLOW_CIDRS",
        /^"nonsense" is not a CIDR range/
      )
    })
  )

  it.effect("webhook allow-list CIDRs are parsed the same under Node's own module loader", () =>
    Effect.gen(function* () {
      const accepted = yield* loadUnderNode({ WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32,::1/128" })
      expect(accepted.stderr).toBe("")
      expect(JSON.parse(accepted.stdout)).toEqual({ webhookAllowCidrs: ["127.0.0.1/32", "::1/128"] })
      const refused = yield* loadUnderNode({ WHATISUP_WEBHOOK_ALLOW_CIDRS: "nonsense" })
      expect(refused.stderr).toBe("")
      expect(JSON.parse(refused.stdout)).toEqual({
        refused:
          'WHATISUP_WEBHOOK_ALLOW_CIDRS: "nonsense" is not a CIDR range such as 127.0.0.1/32, got "nonsense"'
      })
    })
  )
})
