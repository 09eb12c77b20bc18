import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as path from "node:path"
import { startSimulator } from "@whatisup/wa-simulator"
import { latestMigrationId } from "../src/db/migrations.ts"
import { apiClient, waitForQr, waitForStatus } from "./support/api.ts"
import { sqlFor, testDatabase } from "./support/database.ts"
import { gatewayEnvironment, scopedDataDir } from "./support/gateway.ts"
import { testPort } from "./support/ports.ts"
import { gatewayMain, runCli, spawnGateway, waitReady } from "./support/process.ts"
import { waitUntil } from "./support/waits.ts"

const apiOf = (env: { PORT: string }) => `http://127.0.0.1:${env.PORT}`

describe("starting the gateway", () => {
  it.effect(
    "two processes migrating one empty database at the same time both become ready",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        // processes sharing a database share its master key ring
        const shared = { WHATISUP_MASTER_KEYS: `k1:${crypto.randomBytes(32).toString("base64")}` }
        const first = yield* gatewayEnvironment(database.url, shared)
        const second = yield* gatewayEnvironment(database.url, shared)
        const a = yield* spawnGateway(first)
        const b = yield* spawnGateway(second)
        yield* Effect.all([waitReady(a, apiOf(first)), waitReady(b, apiOf(second))], { concurrency: 2 })
        for (const env of [first, second]) {
          expect(yield* (yield* apiClient(apiOf(env))).system.readyz({})).toEqual({ status: "ok" })
        }
        const sql = yield* sqlFor(database.url)
        const applied = yield* sql<{
          migration_id: number
        }>`SELECT migration_id FROM whatisup_migrations ORDER BY 1`
        expect(applied.map((row) => row.migration_id)).toEqual(
          Array.from({ length: latestMigrationId }, (_, i) => i + 1)
        )
      }).pipe(Effect.scoped),
    120_000
  )

  it.effect(
    "bad configuration stops start-up with one line that names the variable",
    () =>
      Effect.gen(function* () {
        const cases: Array<[Record<string, string>, RegExp]> = [
          [{ PORT: "eighty" }, /^whatisup: bad configuration: PORT: expected a port number/],
          [{ DATABASE_URL: "mysql://x" }, /^whatisup: bad configuration: DATABASE_URL: /],
          [{ WHATISUP_ENV: "staging" }, /^whatisup: bad configuration: WHATISUP_ENV: expected one of/],
          [{ WHATISUP_ENV: "production" }, /^whatisup: bad configuration: WHATISUP_MASTER_KEYS: required/],
          [
            { WHATISUP_MASTER_KEYS: "k1:dG9vIHNob3J0" },
            /^whatisup: bad configuration: WHATISUP_MASTER_KEYS: key "k1"/
          ],
          [
            { WHATISUP_ADMIN_LISTEN: "8081" },
            /^whatisup: bad configuration: WHATISUP_ADMIN_LISTEN: expected host:port/
          ],
          [
            { WHATISUP_WEBHOOK_ALLOW_CIDRS: "10.0.0.0/99" },
            /^whatisup: bad configuration: WHATISUP_WEBHOOK_ALLOW_CIDRS/
          ],
          [
            { WHATISUP_LEASE_TTL: "soon" },
            /^whatisup: bad configuration: WHATISUP_LEASE_TTL: expected a duration/
          ],
          [{ LOG_FORMAT: "xml" }, /^whatisup: bad configuration: LOG_FORMAT: expected one of json, pretty/]
        ]
        const database = yield* testDatabase
        for (const [bad, expected] of cases) {
          const env = yield* gatewayEnvironment(database.url, bad)
          const gateway = yield* spawnGateway(env)
          const code = yield* Effect.promise(() => gateway.exited)
          const lines = gateway.output().trim().split("\n")
          expect(code, JSON.stringify(bad)).not.toBe(0)
          expect(lines, JSON.stringify(bad)).toHaveLength(1)
          expect(lines[0]).toMatch(expected)
        }
      }).pipe(Effect.scoped),
    120_000
  )

  it.effect(
    "a port already in use stops start-up with one line naming its variable, before the database is created or migrated",
    () =>
      Effect.gen(function* () {
        const taken = yield* Effect.acquireRelease(
          Effect.promise(
            () =>
              new Promise<net.Server>((resolve) => {
                const server = net.createServer()
                server.listen(0, "127.0.0.1", () => resolve(server))
              })
          ),
          (server) => Effect.promise(() => new Promise((resolve) => server.close(resolve)))
        )
        const port = String((taken.address() as net.AddressInfo).port)
        const database = yield* testDatabase
        const shared = yield* gatewayEnvironment(database.url)
        const { DATABASE_URL: _, ...embedded } = shared
        const cases: Array<[Record<string, string>, string]> = [
          [{ ...shared, PORT: port }, "PORT"],
          [{ ...embedded, PORT: port }, "PORT"],
          [{ ...embedded, WHATISUP_ADMIN_LISTEN: `127.0.0.1:${port}` }, "WHATISUP_ADMIN_LISTEN"]
        ]
        for (const [env, variable] of cases) {
          const gateway = yield* spawnGateway(env)
          expect(yield* Effect.promise(() => gateway.exited), variable).not.toBe(0)
          expect(gateway.output()).toBe(
            `whatisup: bad configuration: ${variable}: 127.0.0.1:${port} is already in use by another process; stop it, or set ${variable} to a free port\n`
          )
          // nothing was set up: no embedded PostgreSQL in the data dir, no migration on DATABASE_URL
          expect(fs.existsSync(path.join(env.WHATISUP_DATA_DIR!, "postgres"))).toBe(false)
        }
        const sql = yield* sqlFor(database.url)
        const tables = yield* sql<{
          name: string | null
        }>`SELECT to_regclass('whatisup_migrations')::text AS name`
        expect(tables[0]!.name).toBeNull()
      }).pipe(Effect.scoped),
    120_000
  )

  it.effect(
    "in development the key ring and the admin token are generated once into the data dir, and only their paths are printed",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        // every interface, as HOST's default: the start-up line names the address bound
        const env = yield* gatewayEnvironment(database.url, { LOG_LEVEL: "info", HOST: "0.0.0.0" })
        const { WHATISUP_ADMIN_TOKEN: _, ...withoutToken } = env
        const gateway = yield* spawnGateway(withoutToken)
        yield* waitReady(gateway, apiOf(env))
        const tokenFile = path.join(env.WHATISUP_DATA_DIR, "admin-token")
        const keysFile = path.join(env.WHATISUP_DATA_DIR, "master-keys")
        const token = fs.readFileSync(tokenFile, "utf8").trim()
        expect(token.length).toBeGreaterThanOrEqual(32)
        expect(fs.readFileSync(keysFile, "utf8")).toMatch(/^k1:[A-Za-z0-9+/]{43}=\n$/)
        expect(fs.statSync(tokenFile).mode & 0o077).toBe(0)
        expect(gateway.output()).toContain(tokenFile)
        expect(gateway.output()).toContain(keysFile)
        expect(gateway.output()).not.toContain(token)
        // logs are JSON lines by default
        const lines = gateway.output().trim().split("\n")
        expect(lines.length).toBeGreaterThan(2)
        for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow()
        const listening = lines.map((line) => JSON.parse(line)).find((l) => l.message.includes("listening"))
        expect(listening).toMatchObject({
          level: "INFO",
          message: `WhatIsUp gateway is listening on http://0.0.0.0:${env.PORT}`,
          annotations: {
            api: `http://0.0.0.0:${env.PORT}`,
            docs: `http://0.0.0.0:${env.PORT}/docs`,
            console: `http://0.0.0.0:${env.PORT}/console`,
            admin: `http://${env.WHATISUP_ADMIN_LISTEN}`,
            whatsapp: "wss://web.whatsapp.com/ws/chat"
          }
        })

        // the CLI finds the token in the data dir
        const cli = yield* runCli(["customers", "list", "--json"], {
          WHATISUP_DATA_DIR: env.WHATISUP_DATA_DIR,
          WHATISUP_ADMIN_URL: `http://${env.WHATISUP_ADMIN_LISTEN}`
        })
        expect(cli.stderr).toBe("")
        expect(JSON.parse(cli.stdout)).toEqual([])
      }).pipe(Effect.scoped),
    120_000
  )

  it.effect(
    "SIGTERM finishes the request in flight, stops accepting, and exits cleanly",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const env = yield* gatewayEnvironment(database.url)
        const gateway = yield* spawnGateway(env)
        yield* waitReady(gateway, apiOf(env))
        const created = yield* runCli(["customers", "create", "Shutdown Co", "--json"], {
          WHATISUP_ADMIN_URL: `http://${env.WHATISUP_ADMIN_LISTEN}`,
          WHATISUP_ADMIN_TOKEN: env.WHATISUP_ADMIN_TOKEN
        })
        const key = JSON.parse(created.stdout).api_key.key as string

        // a request whose body is still arriving when SIGTERM comes
        const inFlight = http.request({
          host: "127.0.0.1",
          port: Number(env.PORT),
          path: "/v1/api-keys",
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }
        })
        const answered = new Promise<{ status: number; body: string }>((resolve, reject) => {
          inFlight.on("response", (res) => {
            let body = ""
            res.on("data", (chunk) => (body += chunk))
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
          })
          inFlight.on("error", reject)
        })
        inFlight.write('{"name":')
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 200)))
        gateway.child.kill("SIGTERM")
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 300)))
        const refused = yield* Effect.promise(() =>
          fetch(`${apiOf(env)}/healthz`).then(
            () => "answered",
            () => "refused"
          )
        )
        inFlight.end('"late"}')
        const reply = yield* Effect.promise(() => answered)
        expect(reply.status).toBe(201)
        expect(JSON.parse(reply.body).name).toBe("late")
        expect(refused).toBe("refused")
        expect(yield* Effect.promise(() => gateway.exited)).toBe(0)
      }).pipe(Effect.scoped),
    120_000
  )

  it.effect(
    "without DATABASE_URL it runs an embedded PostgreSQL in the data dir and keeps data across restarts, even after SIGKILL",
    () =>
      Effect.gen(function* () {
        const probe = yield* gatewayEnvironment("postgresql://unused")
        const { DATABASE_URL: _, ...env } = { ...probe, WHATISUP_DATA_DIR: yield* scopedDataDir }
        const cliEnv = {
          WHATISUP_ADMIN_URL: `http://${env.WHATISUP_ADMIN_LISTEN}`,
          WHATISUP_ADMIN_TOKEN: env.WHATISUP_ADMIN_TOKEN
        }

        const first = yield* spawnGateway(env)
        yield* waitReady(first, apiOf(env))
        expect(fs.existsSync(path.join(env.WHATISUP_DATA_DIR, "postgres", "PG_VERSION"))).toBe(true)
        const created = yield* runCli(["customers", "create", "Embedded Ltd", "--json"], cliEnv)
        expect(created.code).toBe(0)
        const customerId = JSON.parse(created.stdout).customer.id

        // a second gateway on the same data dir refuses to start and leaves the first alone
        const intruder = yield* spawnGateway({
          ...env,
          PORT: String(yield* testPort),
          WHATISUP_ADMIN_LISTEN: `127.0.0.1:${yield* testPort}`,
          LOG_LEVEL: "none"
        })
        expect(yield* Effect.promise(() => intruder.exited)).toBe(1)
        expect(intruder.output()).toMatch(
          /^whatisup: cannot run: WHATISUP_DATA_DIR .* is in use by another gateway \(pid \d+\)/
        )
        expect(yield* (yield* apiClient(apiOf(env))).system.readyz({})).toEqual({ status: "ok" })
        first.child.kill("SIGKILL")
        yield* Effect.promise(() => first.exited)

        const second = yield* spawnGateway({ ...env, LOG_LEVEL: "warn" }, gatewayMain, { ownGroup: true })
        yield* waitReady(second, apiOf(env))
        const listed = yield* runCli(["customers", "list", "--json"], cliEnv)
        expect(JSON.parse(listed.stdout).map((c: { id: string }) => c.id)).toEqual([customerId])
        // Ctrl-C in the terminal of `npm start`: SIGINT to the whole process group. The embedded
        // PostgreSQL, in a group of its own, is stopped by the gateway once it is done with it, not by
        // the signal while the gateway still uses it
        process.kill(-second.child.pid!, "SIGINT")
        expect(yield* Effect.promise(() => second.exited)).toBe(0)
        expect(second.output()).not.toMatch(/notifications lost|SqlError/)
        expect(fs.existsSync(path.join(env.WHATISUP_DATA_DIR, "postgres", "postmaster.pid"))).toBe(false)
      }).pipe(Effect.scoped),
    180_000
  )

  it.effect(
    "a process that exits without closing its embedded PostgreSQL's scope (vitest on Ctrl-C) still stops it",
    () =>
      Effect.gen(function* () {
        const dataDir = yield* scopedDataDir
        const postmaster = path.join(dataDir, "postgres", "postmaster.pid")
        // starts the server, then exits at once, as vitest's Ctrl-C handler does
        const script = `
          import { Effect } from "effect"
          import { startEmbeddedPostgres } from ${JSON.stringify(path.resolve(import.meta.dirname, "../src/db/embedded.ts"))}
          Effect.runPromise(Effect.scoped(Effect.andThen(
            startEmbeddedPostgres(${JSON.stringify(dataDir)}),
            Effect.sync(() => process.exit(0))
          )))`
        const exited = yield* Effect.promise(
          () =>
            new Promise<number | null>((resolve) =>
              spawn(process.execPath, ["--input-type=module", "-e", script], {
                cwd: path.resolve(import.meta.dirname, ".."),
                stdio: "inherit"
              }).on("exit", resolve)
            )
        )
        expect(exited).toBe(0)
        expect(fs.existsSync(path.join(dataDir, "postgres", "PG_VERSION"))).toBe(true)
        // the server's shutdown removes its pid file; one left running would keep it
        yield* waitUntil(
          "the embedded PostgreSQL stopped",
          Effect.sync(() => !fs.existsSync(postmaster)),
          { attempts: 400, everyMillis: 25 }
        )
      }).pipe(Effect.scoped),
    120_000
  )

  it.effect(
    "the gateway started as users start it pairs a channel with WhatsApp (the simulator), and a restarted process logs in again with no QR",
    () =>
      Effect.gen(function* () {
        const sim = yield* Effect.acquireRelease(
          Effect.promise(() => startSimulator()),
          (sim) => Effect.promise(() => sim.close())
        )
        const database = yield* testDatabase
        // served as a role that owns nothing, as in production: no warning about the audit trigger
        const env = yield* gatewayEnvironment(database, {
          WHATISUP_WA_WS_URL: sim.url,
          LOG_LEVEL: "info"
        })
        const gateway = yield* spawnGateway(env)
        yield* waitReady(gateway, apiOf(env))
        const created = yield* runCli(["customers", "create", "Early Bird", "--json"], {
          WHATISUP_ADMIN_URL: `http://${env.WHATISUP_ADMIN_LISTEN}`,
          WHATISUP_ADMIN_TOKEN: env.WHATISUP_ADMIN_TOKEN
        })
        const key = JSON.parse(created.stdout).api_key.key as string
        // the API as users call it: the same port and key across both processes
        const client = yield* apiClient(apiOf(env), key)
        const { id: channel } = yield* client.channels.create({ headers: {}, payload: {} })
        yield* client.channels.connect({ params: { id: channel }, payload: { method: "qr" } })
        const { qr } = yield* waitForQr(client, channel, { everyMillis: 50 })
        yield* Effect.promise(() => sim.scan(qr, { phoneNumber: "447700900123" }))
        const connected = yield* waitForStatus(client, channel, "connected", { everyMillis: 50 })
        expect(connected).toMatchObject({ status: "connected", phone_number: "+447700900123" })

        // what an operator reads: the WhatsApp URL in use, each change of the channel at INFO with its
        // id, no warning for WhatsApp's routine 515 after the scan, and never the QR
        const logs = gateway
          .output()
          .trim()
          .split("\n")
          .map((line) => JSON.parse(line))
        expect(logs.find((l) => l.message.includes("listening")).annotations.whatsapp).toBe(sim.url)
        const changes = logs.filter((l) => l.annotations.channel_id === channel)
        expect(changes.map((l) => [l.level, l.message])).toEqual([
          ["INFO", "channel paired; logging in"],
          ["INFO", "channel connected"]
        ])
        const warnings = logs.filter((l) => l.level !== "INFO")
        expect(warnings.map((l) => l.message)).toEqual([
          "WHATISUP_MASTER_KEYS is unset: generated a development key ring; set WHATISUP_MASTER_KEYS in production"
        ])
        expect(gateway.output()).not.toContain(qr)

        // stop the process and start it again: the login comes back from PostgreSQL, no new QR
        gateway.child.kill("SIGTERM")
        expect(yield* Effect.promise(() => gateway.exited)).toBe(0)
        const again = yield* spawnGateway(env)
        yield* waitReady(again, apiOf(env))
        yield* waitForStatus(client, channel, "connected", { everyMillis: 50 })
        const qrs = yield* client.events.list({ query: { channel_id: channel, type: "channel.qr" } })
        expect(qrs.data).toHaveLength(1)
      }).pipe(Effect.scoped),
    120_000
  )
})
