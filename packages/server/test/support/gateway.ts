import { ConfigProvider, Context, Effect, Layer, Logger } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type GatewayConfig, loadConfig } from "../../src/config/config.ts"
import { layerMinimumLogLevel } from "../../src/config/logging.ts"
import type { ChannelLifecycle } from "../../src/channels/lifecycle.ts"
import type { Leases } from "../../src/channels/leases.ts"
import type { Supervisor } from "../../src/channels/supervisor.ts"
import type { AuthStates } from "../../src/channels/loginStore.ts"
import type { KeyRing } from "../../src/crypto/keyRing.ts"
import { layerGateway } from "../../src/gateway.ts"
import { layerMemoryTransport, MemoryTransport } from "../../src/whatsapp/memoryTransport.ts"
import { type TestDatabase, testDatabase } from "./database.ts"
import { captureLogs, type CapturedLogs } from "./logs.ts"
import { testPort } from "./ports.ts"

export type { CapturedLogs, LogEntry } from "./logs.ts"

export interface RunningGateway {
  readonly api: string
  readonly admin: string
  readonly adminToken: string
  /** The database as its owner: for tests that reach past the gateway (alter tables, take locks). */
  readonly databaseUrl: string
  /** The database as the gateway serves it (a role that owns nothing, when the test database has one). */
  readonly servingDatabaseUrl: string
  readonly dataDir: string
  readonly config: GatewayConfig
  /** The scripted WhatsApp every channel of this gateway talks to. */
  readonly whatsapp: MemoryTransport["Service"]
  /** The gateway's own services, for tests that reach past the API. */
  readonly services: Context.Context<ChannelLifecycle | Leases | Supervisor | AuthStates | KeyRing>
  /** What the gateway logged (at LOG_LEVEL and above), kept for the test rather than printed. */
  readonly logs: CapturedLogs
  /** Runs what a test calls on the gateway's services as the gateway logs: into `logs`, at LOG_LEVEL. */
  readonly logged: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

export class TestGateway extends Context.Service<TestGateway, RunningGateway>()("test/TestGateway") {}

export const tempDataDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "whatisup-test-"))
  fs.chmodSync(dir, 0o755)
  return dir
}

/**
 * Stops at once an embedded PostgreSQL still running in `dataDir` (its pid file is there while it
 * runs): one whose gateway was killed, or never stopped, by a test that failed partway.
 */
const stopEmbeddedPostgresIn = (dataDir: string) => {
  const pidFile = path.join(dataDir, "postgres", "postmaster.pid")
  if (!fs.existsSync(pidFile)) return
  try {
    // immediate shutdown: the postmaster ends its backends and exits
    process.kill(Number(fs.readFileSync(pidFile, "utf8").split("\n")[0]), "SIGQUIT")
  } catch {
    // gone already
  }
}

/**
 * A data dir for a test's gateway, removed when the scope closes, after stopping an embedded
 * PostgreSQL left running in it. Acquired before the gateway, so released after it.
 */
export const scopedDataDir = Effect.acquireRelease(Effect.sync(tempDataDir), (dataDir) =>
  Effect.sync(() => {
    stopEmbeddedPostgresIn(dataDir)
    fs.rmSync(dataDir, { recursive: true, force: true })
  })
)

/**
 * The environment of a gateway under test: its own database, data dir and ports. Given a test
 * database, the gateway serves as its serving role and migrates as its owner, as in production; given
 * a URL alone, it migrates and serves through it.
 */
export const gatewayEnvironment = (database: string | TestDatabase, extra: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const port = yield* testPort
    const adminPort = yield* testPort
    return {
      ...(typeof database === "string"
        ? { DATABASE_URL: database }
        : { DATABASE_URL: database.servingUrl, WHATISUP_MIGRATION_DATABASE_URL: database.url }),
      WHATISUP_DATA_DIR: tempDataDir(),
      HOST: "127.0.0.1",
      PORT: String(port),
      WHATISUP_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
      WHATISUP_ADMIN_TOKEN: crypto.randomBytes(32).toString("base64url"),
      LOG_LEVEL: "error",
      ...extra
    }
  })

/** Starts a whole gateway in this process (real PostgreSQL, real HTTP listeners) for the scope's lifetime. */
export const startGateway = (
  env: Record<string, string>,
  options: { readonly whatsapp?: "memory" | "baileys" } = {}
) =>
  Effect.gen(function* () {
    const config = yield* loadConfig.pipe(
      Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnvRecord(env))
    )
    const logs = captureLogs()
    const logging = Layer.mergeAll(Logger.layer([logs.logger]), layerMinimumLogLevel(config))
    // registered first, so it runs once the gateway has stopped
    yield* Effect.addFinalizer(() => logs.printUntaken)
    const whatsapp = yield* Layer.build(layerMemoryTransport())
    const services = yield* Layer.build(
      (options.whatsapp === "baileys"
        ? layerGateway(config)
        : layerGateway(config, Layer.succeedContext(whatsapp))
      ).pipe(Layer.provide(logging))
    )
    return {
      api: `http://127.0.0.1:${config.port}`,
      admin: `http://127.0.0.1:${config.adminPort}`,
      adminToken: env.WHATISUP_ADMIN_TOKEN ?? "",
      databaseUrl: env.WHATISUP_MIGRATION_DATABASE_URL ?? env.DATABASE_URL ?? "",
      servingDatabaseUrl: env.DATABASE_URL ?? "",
      dataDir: config.dataDir,
      config,
      whatsapp: Context.get(whatsapp, MemoryTransport),
      services,
      logs,
      logged: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, logging)
    }
  })

/** A gateway on a database of its own, for a whole test file. */
export const layerTestGateway = (extra: Record<string, string> = {}) =>
  Layer.effect(
    TestGateway,
    Effect.gen(function* () {
      const database = yield* testDatabase
      const env = yield* gatewayEnvironment(database, extra)
      return yield* startGateway(env).pipe(Effect.orDie)
    })
  )
