import { Effect, Scope } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { databaseOn, sqlFor } from "../../server/test/support/database.ts"
import { gatewayEnvironment, startGateway } from "../../server/test/support/gateway.ts"
import { simulator } from "../../server/test/support/simulator.ts"
import { forkIpcProcess } from "./ipcProcess.ts"
import { ScenarioFailed, waitUntil } from "./measure.ts"

/**
 * A fresh database on the server of `serverUrl` and a whole gateway on it in this process. The
 * gateway runs in a scope of its own, closed by `stop` or with the caller's scope; the database and
 * the data dir go with the caller's scope.
 */
export const benchGateway = (
  serverUrl: string,
  options: { readonly whatsapp: "memory" | "baileys"; readonly env?: Record<string, string> }
) =>
  Effect.gen(function* () {
    const database = yield* databaseOn(serverUrl)
    const env = yield* gatewayEnvironment(database.url, options.env)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => fs.rmSync(env.WHATISUP_DATA_DIR, { recursive: true, force: true }))
    )
    const scope = yield* Scope.fork(yield* Scope.Scope)
    const gateway = yield* startGateway(env, { whatsapp: options.whatsapp }).pipe(Scope.provide(scope))
    return { database, gateway, scope }
  })

/**
 * Node options for the gateway processes a benchmark starts (`BENCH_GATEWAY_NODE_OPTIONS`), e.g.
 * `--cpu-prof --cpu-prof-dir=/tmp/profiles` or `--heapsnapshot-signal=SIGUSR2` (see the README).
 */
export const gatewayNodeOptions: Record<string, string> =
  process.env.BENCH_GATEWAY_NODE_OPTIONS === undefined
    ? {}
    : { NODE_OPTIONS: process.env.BENCH_GATEWAY_NODE_OPTIONS }

/**
 * The environments of `processes` gateway processes on one database (`node-1`, `node-2`...): one
 * key ring, a data dir each (removed with the caller's scope), default lease settings.
 */
export const nodeEnvironments = (databaseUrl: string, processes: number) =>
  Effect.gen(function* () {
    const shared = { WHATISUP_MASTER_KEYS: `k1:${crypto.randomBytes(32).toString("base64")}` }
    const environments = yield* Effect.forEach(
      Array.from({ length: processes }, (_, i) => `node-${i + 1}`),
      (id) =>
        Effect.map(
          gatewayEnvironment(databaseUrl, { ...shared, ...gatewayNodeOptions, WHATISUP_NODE_ID: id }),
          (env) => ({
            id,
            env
          })
        )
    )
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const { env } of environments) fs.rmSync(env.WHATISUP_DATA_DIR, { recursive: true, force: true })
      })
    )
    return environments
  })

/** The simulator in this process, and a whole gateway on real Baileys against it, with a client on its database. */
export const baileysBenchGateway = (serverUrl: string, env: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const sim = yield* simulator
    const { database, gateway } = yield* benchGateway(serverUrl, {
      whatsapp: "baileys",
      env: { WHATISUP_WA_WS_URL: sim.url, ...env }
    })
    return { sim, gateway, sql: yield* sqlFor(database.url) }
  })

const gatewayMain = path.resolve(import.meta.dirname, "gateway-process.ts")

/**
 * A fresh database on the server of `serverUrl` and a whole gateway on it in an OS process of its own
 * (`gateway-process.ts`: the environment of `npm start`, nothing inherited but PATH and HOME), up and
 * answering /readyz, until the scope closes: the addresses a client takes, the process (its memory,
 * its pid) and a client on its database.
 */
export const forkedGateway = (serverUrl: string, env: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const database = yield* databaseOn(serverUrl)
    const node = (yield* nodeEnvironments(database.url, 1))[0]!.env
    const child = yield* forkIpcProcess(gatewayMain, [], {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...node,
      ...env
    })
    const gateway = {
      api: `http://127.0.0.1:${node.PORT}`,
      admin: `http://${node.WHATISUP_ADMIN_LISTEN}`,
      adminToken: node.WHATISUP_ADMIN_TOKEN!
    }
    yield* waitUntil(
      "the gateway process answers /readyz",
      Effect.suspend(() => {
        const ended = child.ended()
        return ended !== undefined
          ? Effect.fail(
              new ScenarioFailed({ message: `the gateway process ended before it was ready: ${ended}` })
            )
          : Effect.promise(() =>
              fetch(`${gateway.api}/readyz`).then(
                (response) => response.ok,
                () => false
              )
            )
      }),
      60_000
    ).pipe(
      Effect.catchTag("WaitTimedOut", (timedOut) =>
        Effect.fail(new ScenarioFailed({ message: timedOut.message }))
      )
    )
    return { gateway, process: child, database, sql: yield* sqlFor(database.url) }
  })
