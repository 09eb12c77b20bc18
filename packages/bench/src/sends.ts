import { Effect, type Scope } from "effect"
import * as path from "node:path"
import { SqlClient } from "effect/sql"
import { poolConnections } from "../../server/src/db/client.ts"
import { runMigrations } from "../../server/src/db/migrations.ts"
import { maxBatch, workers } from "../../server/src/messages/intake.ts"
import { newCustomer } from "../../server/test/support/admin.ts"
import { databaseOn, sqlFor } from "../../server/test/support/database.ts"
import { forkedGateway } from "./gateway.ts"
import { forkIpcProcess } from "./ipcProcess.ts"
import { type LoadFigures, httpLoad } from "./load.ts"
import { ensure, judged, median, processCpuMillis } from "./measure.ts"
import type { Report } from "./report.ts"
import type { Storage } from "./minimalSends.ts"
import type { Listening, SendsServer } from "./sends-server-process.ts"

export interface SendsSize {
  /** Length of each measured load run. */
  readonly seconds: number
  /** Length of each server's unmeasured first run (the JIT, the key cache, the pools). */
  readonly warmUpSeconds: number
  /** Measured runs of each server, taken in turn; the figures are their medians. */
  readonly rounds: number
  readonly connections: number
}

/** What the issue asks of the gateway against the minimal servers of the same run. */
const targets = { perTransactionPerSend: 2.5, perWriteCombined: 0.6 }

/** A text of a typical length, as a customer's program sends it. */
const send = {
  to: "+15557654321",
  type: "text",
  text: { body: "Hello! Your order 4711 has shipped and should arrive on Thursday. Thanks!" }
} as const

/** The minimal write-combined server batches as the gateway's intake does. */
const intakeBatching = { maxBatch, writers: workers }

const serverMain = path.resolve(import.meta.dirname, "sends-server-process.ts")

const isListening = (report: unknown): report is Listening =>
  (report as { readonly kind?: unknown } | null)?.kind === "listening"

/** A baseline server in an OS process of its own until the scope closes: its address, and the process to read the CPU of. */
const serverProcess = (server: SendsServer) =>
  Effect.gen(function* () {
    const child = yield* forkIpcProcess(serverMain, [JSON.stringify(server)])
    const { url } = yield* child.next("a sends server listening", isListening)
    return { url, pid: child.pid }
  })

/**
 * Accepted sends a second through `POST /v1/channels/{id}/messages` of a whole gateway in an OS
 * process of its own (real PostgreSQL, a created channel that is not connected, so sends just queue),
 * under autocannon in a process of its own, against minimal `node:http` servers in the same run, each
 * in a process of its own too: (a) `pg` with one transaction per send, (b) `pg` write-combining, (c)
 * the gateway's HTTP stack answering without a database, and bare `node:http` without one for
 * orientation.
 */
export const sends = (
  serverUrl: string,
  { seconds, warmUpSeconds, rounds, connections }: SendsSize
): Effect.Effect<Report, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const {
      gateway,
      process: gatewayProcess,
      database: gatewayDatabase,
      sql: gatewaySql
    } = yield* forkedGateway(serverUrl)
    // like every plan limit, the request rate is raised so it does not cap the figure
    const { client, customerId, key } = yield* newCustomer(gateway, {
      name: "Bench",
      plan: { api_requests_per_second: 1_000_000 }
    })
    const channel = yield* client.channels.create({ headers: {}, payload: {} })
    const path = `/v1/channels/${channel.id}/messages`
    const answer = yield* client.messages.send({ params: { id: channel.id }, headers: {}, payload: send })

    /** A database of the gateway's schema holding this customer and channel, for a minimal server's sends. */
    const baselineDatabase = Effect.gen(function* () {
      const own = yield* databaseOn(serverUrl)
      const sql = yield* sqlFor(own.url)
      yield* runMigrations.pipe(Effect.provideService(SqlClient.SqlClient, sql))
      for (const [table, id] of [
        ["customers", customerId],
        ["channels", channel.id]
      ] as const) {
        const [row] = yield* gatewaySql<{ row: string }>`
          SELECT row_to_json(t)::text AS row FROM ${gatewaySql(table)} t WHERE id = ${id}`
        yield* sql`INSERT INTO ${sql(table)} SELECT * FROM json_populate_record(NULL::${sql(table)}, ${row!.row}::json)`
      }
      return { url: own.url, sql }
    })
    const perSendDatabase = yield* baselineDatabase
    const combinedDatabase = yield* baselineDatabase
    const sender = { customerId, key }

    const minimal = (storage?: Storage) =>
      serverProcess({ kind: "minimal", sender, ...(storage !== undefined && { storage }) })
    const servers = [
      { name: "gateway", url: gateway.api, pid: gatewayProcess.pid, sql: gatewaySql },
      {
        name: "transaction_per_send",
        ...(yield* minimal({
          kind: "transaction_per_send",
          url: perSendDatabase.url,
          connections: poolConnections
        })),
        sql: perSendDatabase.sql
      },
      {
        name: "write_combined",
        ...(yield* minimal({
          kind: "write_combined",
          url: combinedDatabase.url,
          connections: poolConnections,
          ...intakeBatching
        })),
        sql: combinedDatabase.sql
      },
      {
        name: "framework",
        ...(yield* serverProcess({ kind: "framework", databaseUrl: gatewayDatabase.url, answer })),
        sql: undefined
      },
      { name: "bare_http", ...(yield* minimal()), sql: undefined }
    ] as const
    type Name = (typeof servers)[number]["name"]

    const load = (url: string, runSeconds: number) =>
      httpLoad({
        url: `${url}${path}`,
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify(send),
        connections,
        seconds: runSeconds
      })
    const accepted = new Map<Name, number>(servers.map((server) => [server.name, 0]))
    /** Counts a run's accepted sends for the check of what was stored; a run with any other answer fails the scenario. */
    const tallied = (name: Name, figures: LoadFigures) =>
      Effect.andThen(
        Effect.sync(() => accepted.set(name, accepted.get(name)! + figures.accepted)),
        ensure(
          figures.non2xx === 0 && figures.errors === 0 && figures.accepted > 0,
          `${name}: ${figures.accepted} sends accepted, ${figures.non2xx} answered otherwise (by status: ${JSON.stringify(figures.statuses)}), ${figures.errors} errors or timeouts`
        )
      )

    for (const server of servers)
      yield* Effect.flatMap(load(server.url, warmUpSeconds), (f) => tallied(server.name, f))
    const measured = new Map<Name, Array<LoadFigures & { readonly cpuMicrosPerSend: number }>>(
      servers.map((server) => [server.name, []])
    )
    for (let round = 0; round < rounds; round++) {
      for (const server of servers) {
        const cpu = yield* processCpuMillis(server.pid)
        const figures = yield* load(server.url, seconds)
        const usedMillis = (yield* processCpuMillis(server.pid)) - cpu
        yield* tallied(server.name, figures)
        measured
          .get(server.name)!
          .push({ ...figures, cpuMicrosPerSend: Math.round((usedMillis * 1000) / figures.accepted) })
      }
    }

    // every accepted send is stored with its first status; a send cut off when a run stopped may be stored unanswered
    for (const server of servers) {
      if (server.sql === undefined) continue
      const [stored] = yield* server.sql<{ messages: number; statuses: number }>`
        SELECT (SELECT count(*)::int FROM messages WHERE channel_id = ${channel.id}) AS messages,
               (SELECT count(*)::int FROM message_statuses s JOIN messages m ON m.id = s.message_id
                WHERE m.channel_id = ${channel.id} AND s.status = 'queued') AS statuses`
      const answered = accepted.get(server.name)! + (server.name === "gateway" ? 1 : 0)
      const unanswered = (rounds + 1) * connections
      yield* ensure(
        stored!.messages === stored!.statuses &&
          stored!.messages >= answered &&
          stored!.messages <= answered + unanswered,
        `${server.name}: ${answered} sends accepted, ${stored!.messages} messages stored with ${stored!.statuses} queued statuses`
      )
    }

    const of = (name: Name) => {
      const runs = measured.get(name)!
      return {
        perSecond: median(runs.map((run) => run.perSecond)),
        p50Ms: median(runs.map((run) => run.p50Ms)),
        p99Ms: median(runs.map((run) => run.p99Ms)),
        cpuMicrosPerSend: median(runs.map((run) => run.cpuMicrosPerSend))
      }
    }
    /** The gateway against `name`, the median of the ratios taken round by round. */
    const ratioTo = (name: Name) =>
      judged(
        median(measured.get("gateway")!.map((run, i) => run.perSecond / measured.get(name)![i]!.perSecond))
      )
    const figuresOf = (name: Name, label: string) => {
      const figures = of(name)
      return [
        {
          key: `${name}_per_s`,
          label: `${label}: accepted sends`,
          value: figures.perSecond,
          unit: "sends/s"
        },
        { key: `${name}_p50_ms`, label: `${label}: p50 latency`, value: figures.p50Ms, unit: "ms" },
        {
          key: `${name}_p99_ms`,
          label: `${label}: p99 latency`,
          value: figures.p99Ms,
          unit: "ms",
          ...(name === "gateway" && { target: { atMost: of("transaction_per_send").p99Ms } })
        },
        {
          key: `${name}_cpu_us_per_send`,
          label: `${label}: its process's CPU per send`,
          value: figures.cpuMicrosPerSend,
          unit: "µs"
        }
      ]
    }
    return {
      benchmark: "sends",
      title: `accepted sends: POST ${path.replace(channel.id, "{id}")} at ${connections} connections, the gateway vs minimal servers`,
      parameters: {
        connections,
        seconds,
        warm_up_seconds: warmUpSeconds,
        rounds,
        body_bytes: Buffer.byteLength(JSON.stringify(send)),
        load: "autocannon, own process",
        servers: "a process each",
        pool_connections: poolConnections
      },
      figures: [
        ...figuresOf("gateway", "gateway"),
        ...figuresOf("transaction_per_send", "(a) node:http + pg, a transaction per send"),
        ...figuresOf("write_combined", "(b) node:http + pg, write-combined"),
        ...figuresOf("framework", "(c) the gateway's HttpApi stack, no database"),
        ...figuresOf("bare_http", "bare node:http, no database"),
        {
          key: "ratio_transaction_per_send",
          label: "gateway / (a)",
          value: ratioTo("transaction_per_send"),
          unit: "",
          target: { atLeast: targets.perTransactionPerSend }
        },
        {
          key: "ratio_write_combined",
          label: "gateway / (b)",
          value: ratioTo("write_combined"),
          unit: "",
          target: { atLeast: targets.perWriteCombined }
        },
        { key: "ratio_framework", label: "gateway / (c)", value: ratioTo("framework"), unit: "" }
      ]
    } satisfies Report
  })
