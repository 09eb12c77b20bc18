import { Api, Caller, type Me } from "@whatisup/domain"
import { Effect, Layer, type Scope } from "effect"
import { HttpApi, HttpApiBuilder, HttpApiGroup } from "effect/http-api"
import { poolConnections } from "../../server/src/db/client.ts"
import { newCustomer } from "../../server/test/support/admin.ts"
import { frameworkStack } from "./frameworkStack.ts"
import { benchGateway } from "./gateway.ts"
import { httpLoad, type LoadFigures } from "./load.ts"
import { ensure, judged, median, profileDir, profiled } from "./measure.ts"
import { minimalReadServer } from "./minimalReads.ts"
import type { Report } from "./report.ts"

export interface ReadsSize {
  /** Length of each measured load run. */
  readonly seconds: number
  /** Length of each server's unmeasured first run (the JIT, the key cache, the pools). */
  readonly warmUpSeconds: number
  /** Measured runs of each server, taken in turn; the figures are their medians. */
  readonly rounds: number
  readonly connections: number
}

/** What the issue asks: the gateway serves /v1/me at least as fast as the minimal server's query a request. */
const targetRatio = 1.0

/** The me group as the gateway's `Api` declares it (its schema and the Authorization middleware). */
const MeOnlyApi = HttpApi.make("whatisup")
  .add(HttpApiGroup.make("me").add(Api.groups.me.endpoints.get))
  .annotateMerge(Api.annotations)

/**
 * The framework's ceiling: the gateway's own HTTP stack for /v1/me (request pipeline, bearer keys
 * through the real key cache and rate limiter, the answer's schema) whose handler answers the caller's
 * customer as it was read once, without a query. The database is read only to fill the key cache.
 */
const frameworkServer = (databaseUrl: string, customer: Me["customer"]) =>
  Effect.gen(function* () {
    const handlers = HttpApiBuilder.group(MeOnlyApi, "me", (handlers) =>
      handlers.handle("get", () =>
        Effect.map(Caller, (caller) => ({
          customer,
          key_id: caller.keyId,
          channel_id: caller.channelId
        }))
      )
    )
    return yield* frameworkStack(HttpApiBuilder.layer(MeOnlyApi).pipe(Layer.provide(handlers)), databaseUrl)
  })

/**
 * Authenticated reads a second: `GET /v1/me` of a whole gateway in this process (real PostgreSQL),
 * which answers from its key cache without a query, under autocannon in a process of its own, against
 * a minimal `node:http` + `pg` server making one query per request on the same database (see
 * minimalReads.ts for what each does).
 */
export const reads = (
  serverUrl: string,
  { seconds, warmUpSeconds, rounds, connections }: ReadsSize
): Effect.Effect<Report, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const { database, gateway } = yield* benchGateway(serverUrl, { whatsapp: "memory" })
    // like every plan limit, the request rate is raised so it does not cap the figure
    const { client, key } = yield* newCustomer(gateway, {
      name: "Bench",
      plan: { api_requests_per_second: 1_000_000 }
    })
    const expected = yield* client.me.get()
    const servers = [
      { name: "gateway", url: gateway.api },
      { name: "minimal", url: yield* minimalReadServer(database.url, poolConnections) },
      { name: "framework", url: yield* frameworkServer(database.url, expected.customer) }
    ] as const
    type Name = (typeof servers)[number]["name"]

    // every server answers the same body for the key, however it comes by it
    for (const server of servers) {
      const response = yield* Effect.promise(() =>
        fetch(`${server.url}/v1/me`, { headers: { authorization: `Bearer ${key}` } })
      )
      const body: unknown = yield* Effect.promise(() => response.json())
      yield* ensure(
        response.status === 200 && JSON.stringify(body) === JSON.stringify(expected),
        `${server.name} answers /v1/me ${response.status} ${JSON.stringify(body)}, not ${JSON.stringify(expected)}`
      )
    }

    const load = (url: string, runSeconds: number) =>
      httpLoad({
        url: `${url}/v1/me`,
        headers: { authorization: `Bearer ${key}` },
        connections,
        seconds: runSeconds
      })
    /** A run with any answer but 200 fails the scenario: its figures would measure refusals. */
    const checked = (name: Name, figures: LoadFigures) =>
      Effect.as(
        ensure(
          figures.non2xx === 0 && figures.errors === 0 && figures.accepted > 0,
          `${name}: ${figures.accepted} reads answered 200, ${figures.non2xx} answered otherwise (by status: ${JSON.stringify(figures.statuses)}), ${figures.errors} errors or timeouts`
        ),
        figures
      )

    for (const server of servers)
      yield* Effect.flatMap(load(server.url, warmUpSeconds), (f) => checked(server.name, f))
    const measured = new Map<Name, Array<LoadFigures & { readonly cpuMicrosPerRead: number }>>(
      servers.map((server) => [server.name, []])
    )
    for (let round = 0; round < rounds; round++) {
      for (const server of servers) {
        const run = load(server.url, seconds)
        const cpu = process.cpuUsage()
        const figures = yield* Effect.flatMap(
          round === 0 ? profiled(`reads-${server.name}`, run) : run,
          (f) => checked(server.name, f)
        )
        const used = process.cpuUsage(cpu)
        measured
          .get(server.name)!
          .push({ ...figures, cpuMicrosPerRead: Math.round((used.user + used.system) / figures.accepted) })
      }
    }

    const figuresOf = (name: Name, label: string) => {
      const runs = measured.get(name)!
      const of = (pick: (run: (typeof runs)[number]) => number) => median(runs.map(pick))
      return [
        {
          key: `${name}_per_s`,
          label: `${label}: reads`,
          value: of((run) => run.perSecond),
          unit: "reads/s"
        },
        { key: `${name}_p50_ms`, label: `${label}: p50 latency`, value: of((run) => run.p50Ms), unit: "ms" },
        { key: `${name}_p99_ms`, label: `${label}: p99 latency`, value: of((run) => run.p99Ms), unit: "ms" },
        {
          key: `${name}_cpu_us_per_read`,
          label: `${label}: this process's CPU per read`,
          value: of((run) => run.cpuMicrosPerRead),
          unit: "µs"
        }
      ]
    }
    /** The gateway against `name`, the median of the ratios taken round by round. */
    const ratioTo = (name: Name) =>
      judged(
        median(measured.get("gateway")!.map((run, i) => run.perSecond / measured.get(name)![i]!.perSecond))
      )
    return {
      benchmark: "reads",
      title: `authenticated reads: GET /v1/me at ${connections} connections, the gateway (answers from its key cache) vs a minimal server making one query a request`,
      parameters: {
        connections,
        seconds,
        warm_up_seconds: warmUpSeconds,
        rounds,
        load: "autocannon, own process",
        servers: "in-process",
        pool_connections: poolConnections,
        profiled: profileDir !== undefined
      },
      figures: [
        ...figuresOf("gateway", "gateway, from its key cache"),
        ...figuresOf("minimal", "node:http + pg, a query a request"),
        ...figuresOf("framework", "the gateway's HttpApi stack, no query"),
        {
          key: "ratio_minimal",
          label: "gateway (key cache) / minimal (a query a request)",
          value: ratioTo("minimal"),
          unit: "",
          target: { atLeast: targetRatio }
        },
        { key: "ratio_framework", label: "gateway / framework", value: ratioTo("framework"), unit: "" }
      ]
    } satisfies Report
  })
