import { Context, Effect, Layer, type Scope } from "effect"
import * as crypto from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { Agent } from "undici"
import { GatewayConfigService } from "../../server/src/config/config.ts"
import { newId } from "../../server/src/db/ids.ts"
import { DestinationClient, layerDestinationClient } from "../../server/src/webhooks/destinationClient.ts"
import { WebhookSigner } from "../../server/src/webhooks/signer.ts"
import { layerResolver, layerSsrfGuard } from "../../server/src/webhooks/ssrfGuard.ts"
import { newCustomer } from "../../server/test/support/admin.ts"
import { sqlFor } from "../../server/test/support/database.ts"
import { waitFor } from "../../server/test/support/waits.ts"
import { benchGateway } from "./gateway.ts"
import { ensure, median as medianOf, millisSince, profileDir, profiled } from "./measure.ts"
import type { Report } from "./report.ts"

export interface DeliveriesSize {
  /** Deliveries in each measured round (a warm-up round of as many goes first, unmeasured). */
  readonly deliveries: number
  /** Customer-wide endpoints on the one receiver; each event goes to one of them, in turn. */
  readonly endpoints: number
  /** Attempts in flight at once: the dispatcher's WHATISUP_DISPATCH_CONCURRENCY, and the baseline's. */
  readonly concurrency: number
  /** The dispatcher's WHATISUP_DISPATCH_PER_ENDPOINT. */
  readonly perEndpoint: number
  /** Measured rounds, each the dispatcher and then both loops on its events; the figures are their medians. */
  readonly rounds: number
}

/** What the issue asks: the dispatcher delivers at least half the rate of a bare undici loop. */
const targetRatio = 0.5

/** Bound on a round: far beyond any figure, so only a broken run reaches it. */
const withinMillis = 300_000

interface Round {
  readonly ids: ReadonlySet<string>
  readonly seen: Map<string, number>
  firstAt: number
  lastAt: number
  readonly done: Promise<void>
}

/**
 * A customer's webhook receiver on 127.0.0.1 as small as one can be: it reads each request, answers
 * 200 `ok` on a kept-alive connection, and counts webhook-ids per round; the first requests of a
 * round are kept whole, to check their signatures.
 */
const receiver = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{
        readonly url: string
        readonly server: http.Server
        readonly expect: (ids: ReadonlyArray<string>) => Round
        readonly samples: Array<{ headers: http.IncomingHttpHeaders; body: string }>
      }>((resolve) => {
        let round: (Round & { resolve: () => void }) | undefined
        const samples: Array<{ headers: http.IncomingHttpHeaders; body: string }> = []
        const server = http.createServer({ keepAliveTimeout: 60_000 }, (request, response) => {
          const id = String(request.headers["webhook-id"])
          const keep = samples.length < 8
          let body = ""
          if (keep) request.setEncoding("utf8").on("data", (chunk: string) => (body += chunk))
          else request.resume()
          request.on("end", () => {
            response.writeHead(200, { "content-type": "text/plain", "content-length": "2" })
            response.end("ok")
            if (keep) samples.push({ headers: request.headers, body })
            const current = round
            if (current === undefined || !current.ids.has(id)) return
            const now = performance.now()
            if (current.seen.size === 0) current.firstAt = now
            current.lastAt = now
            const count = current.seen.get(id)
            current.seen.set(id, (count ?? 0) + 1)
            if (count === undefined && current.seen.size === current.ids.size) current.resolve()
          })
        })
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as AddressInfo
          resolve({
            url: `http://127.0.0.1:${port}`,
            server,
            samples,
            expect: (ids) => {
              let resolve = () => {}
              const done = new Promise<void>((r) => (resolve = r))
              samples.length = 0
              round = { ids: new Set(ids), seen: new Map(), firstAt: 0, lastAt: 0, done, resolve }
              return round
            }
          })
        })
      })
  ),
  ({ server }) =>
    Effect.promise(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections()
          server.close(() => resolve())
        })
    )
)

/** Microseconds of this process's CPU (user and system) since `start`. */
const cpuSince = (start: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(start)
  return used.user + used.system
}

const perSecond = (count: number, millis: number) => Math.round((count / millis) * 1000)

/** The signature header as the gateway's signer makes it: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`. */
const signature = (key: Buffer, id: string, timestamp: number, body: string) =>
  `v1,${crypto.createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")}`

/** An event as a receiver gets it: a message received, with a text of a typical length. */
const eventData = (sequence: number) => ({
  channel_id: "ch_01benchbenchbenchbenchbench",
  sequence,
  message: {
    id: `msg_01bench${String(sequence).padStart(16, "0")}`,
    from: "+15551234567",
    type: "text",
    text: { body: "Hello! Is the order I placed yesterday on its way? Thanks a lot." },
    timestamp: "2026-05-01T12:00:00.000Z"
  }
})

/**
 * Webhook deliveries per second: the gateway's dispatcher posting `deliveries` due deliveries to a
 * local receiver until every one is recorded `succeeded`, against a bare undici loop posting the same
 * signed bodies to the same receiver with the same concurrency, both in this one process.
 */
export const deliveries = (
  serverUrl: string,
  { deliveries: count, endpoints, concurrency, perEndpoint, rounds }: DeliveriesSize
): Effect.Effect<Report, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const sink = yield* receiver
    const { database, gateway } = yield* benchGateway(serverUrl, {
      whatsapp: "memory",
      env: {
        WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32",
        WHATISUP_DISPATCH_CONCURRENCY: String(concurrency),
        WHATISUP_DISPATCH_PER_ENDPOINT: String(perEndpoint),
        // like the plan's limits, the customer's share is raised so it does not cap the figure
        WHATISUP_DISPATCH_PER_CUSTOMER: String(concurrency)
      }
    })
    const sql = yield* sqlFor(database.url)
    const { client, customerId } = yield* newCustomer(gateway, {
      name: "Bench",
      plan: { max_webhook_endpoints: endpoints }
    })
    const created = yield* Effect.forEach(
      Array.from({ length: endpoints }, (_, i) => i),
      (i) => client.webhooks.create({ headers: {}, payload: { url: `${sink.url}/hooks/${i}` } })
    )
    const paths = new Map(created.map((endpoint, i) => [endpoint.id as string, `/hooks/${i}`]))
    const keys = new Map(
      created.map((endpoint) => [
        endpoint.id as string,
        Buffer.from(endpoint.secret.slice("whsec_".length), "base64")
      ])
    )

    /** `n` events, each with one delivery to an endpoint in turn, as they will be written. */
    const planned = (n: number) =>
      Array.from({ length: n }, (_, i) => ({
        event: newId.event(),
        delivery: newId.delivery(),
        endpoint: created[i % endpoints]!.id,
        data: eventData(i)
      }))
    type Planned = ReturnType<typeof planned>

    /** The events as the dispatcher reads them back, so the loops post the very bodies it posts. */
    const bodiesOf = (events: ReadonlyArray<string>) =>
      Effect.map(
        sql<{ id: string; endpoint_id: string; data: string; created_at: Date }>`
          SELECT e.id, d.endpoint_id, e.data::text AS data, e.created_at FROM events e JOIN deliveries d ON d.event_id = e.id
          WHERE e.id = ANY(${events}::text[])`,
        (rows) =>
          rows.map((event) => ({
            id: event.id,
            endpoint: event.endpoint_id,
            path: paths.get(event.endpoint_id)!,
            // the dispatcher posts the data as PostgreSQL prints it
            body: `{"type":"message.received","timestamp":"${event.created_at.toISOString()}","data":${event.data}}`
          }))
      )
    type Queued = Effect.Success<ReturnType<typeof bodiesOf>>

    /**
     * The customer's deliveries still pending, counted through the dispatcher's own index of pending
     * ones: a cheap poll however many earlier rounds recorded (counting those succeeded would read
     * every round's rows, more each round, while the dispatcher's round is timed).
     */
    const pending = Effect.map(
      sql<{ n: number }>`
        SELECT count(*)::int AS n FROM deliveries WHERE status = 'pending' AND customer_id = ${customerId}`,
      (rows) => rows[0]!.n
    )

    /**
     * The events and their deliveries, due at once, written in one transaction (a burst, visible all
     * together at its commit) and the dispatcher woken: from the commit until every delivery is recorded
     * succeeded.
     */
    const dispatched = (rows: Planned) =>
      Effect.gen(function* () {
        const ids = rows.map((row) => row.event)
        const round = sink.expect(ids)
        yield* sql.withTransaction(
          Effect.forEach(
            Array.from({ length: Math.ceil(rows.length / 2000) }, (_, i) =>
              JSON.stringify(rows.slice(i * 2000, (i + 1) * 2000))
            ),
            (chunk) =>
              Effect.andThen(
                sql`
                  INSERT INTO events (id, customer_id, type, data)
                  SELECT event, ${customerId}, 'message.received', data
                  FROM jsonb_to_recordset(${chunk}::jsonb) AS r (event text, data jsonb)`,
                sql`
                  INSERT INTO deliveries (id, customer_id, endpoint_id, event_id, event_type, next_attempt_at)
                  SELECT delivery, ${customerId}, endpoint, event, 'message.received', now()
                  FROM jsonb_to_recordset(${chunk}::jsonb) AS r (delivery text, endpoint text, event text)`
              ),
            { discard: true }
          )
        )
        const start = performance.now()
        const cpu = process.cpuUsage()
        yield* sql`SELECT pg_notify('whatisup_deliveries_due', 'bench')`
        yield* Effect.promise(() => round.done).pipe(
          Effect.timeoutOrElse({
            duration: withinMillis,
            orElse: () => Effect.die(`only ${round.seen.size} of ${ids.length} events reached the receiver`)
          })
        )
        // none pending: each recorded, succeeded or not (the attempts below say which)
        yield* waitFor(`all ${ids.length} deliveries recorded`, pending, (n) => n === 0, {
          attempts: 60_000,
          everyMillis: 5
        })
        const millis = millisSince(start)
        const cpuMicros = cpuSince(cpu)
        const attempts = yield* sql<{ n: number; ok: number }>`
          SELECT count(*)::int AS n, count(*) FILTER (WHERE a.status_code = 200)::int AS ok
          FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.event_id = ANY(${ids}::text[])`
        return {
          millis,
          cpuMicros,
          firstMillis: round.firstAt - start,
          round,
          attempts: attempts[0]!,
          queued: yield* bodiesOf(ids)
        }
      }).pipe(Effect.orDie)

    const agent = yield* Effect.acquireRelease(
      Effect.sync(() => new Agent({ keepAliveTimeout: 60_000, connections: concurrency })),
      (agent) => Effect.promise(() => agent.close())
    )
    // the gateway's own client (SSRF guard, pinned pools, timeouts, excerpt), built as the gateway builds it
    const gatewayClient = yield* Layer.build(
      layerDestinationClient.pipe(
        Layer.provide(layerSsrfGuard),
        Layer.provide(layerResolver),
        Layer.provide(Layer.succeed(GatewayConfigService, gateway.config))
      )
    ).pipe(Effect.map(Context.get(DestinationClient)))

    /** Posts every queued event, `concurrency` at a time, and measures it at the receiver and in CPU. */
    const timed = <E>(queued: Queued, posting: Effect.Effect<void, E>) =>
      Effect.gen(function* () {
        const round = sink.expect(queued.map((event) => event.id))
        const start = performance.now()
        const cpu = process.cpuUsage()
        yield* posting
        return { millis: millisSince(start), cpuMicros: cpuSince(cpu), round }
      })

    /** The baseline: a bare undici loop posting the bodies, signed as the signer signs them, each answer read. */
    const posted = (queued: Queued) =>
      timed(
        queued,
        Effect.promise(async () => {
          let next = 0
          const loop = async () => {
            while (next < queued.length) {
              const event = queued[next++]!
              const timestamp = Math.floor(Date.now() / 1000)
              const response = await agent.request({
                origin: sink.url,
                path: event.path,
                method: "POST",
                headers: {
                  "content-type": "application/json",
                  "user-agent": "WhatIsUp-Webhooks/1.0",
                  "webhook-id": event.id,
                  "webhook-timestamp": String(timestamp),
                  "webhook-signature": signature(keys.get(event.endpoint)!, event.id, timestamp, event.body)
                },
                body: event.body
              })
              const text = await response.body.text()
              if (response.statusCode !== 200 || text !== "ok")
                throw new Error(`answered ${response.statusCode}`)
            }
          }
          await Promise.all(Array.from({ length: concurrency }, loop))
        })
      )

    /** The same loop through the gateway's own destination client and signer: what posting costs before any dispatching. */
    const postedByClient = (queued: Queued) => {
      let next = 0
      const loop = Effect.gen(function* () {
        while (next < queued.length) {
          const event = queued[next++]!
          const headers = WebhookSigner.headers(
            [keys.get(event.endpoint)!],
            event.id,
            Math.floor(Date.now() / 1000),
            event.body
          )
          const answer = yield* gatewayClient.post(`${sink.url}${event.path}`, { headers, body: event.body })
          if (answer.status !== 200) return yield* Effect.die(`answered ${answer.status}`)
        }
      })
      return timed(
        queued,
        Effect.forEach(Array.from({ length: concurrency }), () => loop, {
          concurrency: "unbounded",
          discard: true
        }).pipe(Effect.orDie)
      )
    }

    const exactlyOnce = (round: Round, who: string) =>
      ensure(
        round.seen.size === count && [...round.seen.values()].every((n) => n === 1),
        `the receiver got each event ${who} posted exactly once`
      )

    // each goes once unmeasured at full size first: a shorter warm-up leaves the first measured round to the JIT
    const warmUp = count
    const warmedUp = yield* dispatched(planned(warmUp))
    yield* posted(warmedUp.queued)
    yield* postedByClient(warmedUp.queued)

    // in rounds: the machine is shared, and a spell of noise should sway one round, not the figure
    const measured: Array<{
      readonly dispatcher: Effect.Success<ReturnType<typeof dispatched>>
      readonly baseline: Effect.Success<ReturnType<typeof posted>>
      readonly byClient: Effect.Success<ReturnType<typeof postedByClient>>
    }> = []
    for (let round = 1; round <= rounds; round++) {
      const tag = rounds === 1 ? "" : `-${round}`
      const dispatcher = yield* profiled(`deliveries-dispatcher${tag}`, dispatched(planned(count)))
      const forDispatcher = dispatcher.queued
      yield* ensure(
        dispatcher.attempts.n === count && dispatcher.attempts.ok === count,
        `the dispatcher made ${dispatcher.attempts.n} attempts (${dispatcher.attempts.ok} answered 200) for ${count} deliveries`
      )
      yield* exactlyOnce(dispatcher.round, "the dispatcher")
      const bodies = new Map(forDispatcher.map((event) => [event.id, event]))
      const verifies = (sample: { headers: http.IncomingHttpHeaders; body: string }) => {
        const id = String(sample.headers["webhook-id"])
        const event = bodies.get(id)
        return (
          event !== undefined &&
          event.body === sample.body &&
          sample.headers["webhook-signature"] ===
            signature(keys.get(event.endpoint)!, id, Number(sample.headers["webhook-timestamp"]), sample.body)
        )
      }
      yield* ensure(
        sink.samples.length > 0 && sink.samples.every(verifies),
        "the dispatcher posted the bodies the baseline posts, signed as the baseline signs them"
      )

      // the same events again, posted by the loops (the receiver neither knows nor cares)
      const baseline = yield* profiled(`deliveries-baseline${tag}`, posted(forDispatcher))
      yield* exactlyOnce(baseline.round, "the bare loop")
      const byClient = yield* profiled(`deliveries-client${tag}`, postedByClient(forDispatcher))
      yield* exactlyOnce(byClient.round, "the client loop")
      measured.push({ dispatcher, baseline, byClient })
    }

    const rate = (run: { readonly millis: number }) => perSecond(count, run.millis)
    const spanRate = (round: Round) => perSecond(count - 1, round.lastAt - round.firstAt)
    const cpuPer = (run: { readonly cpuMicros: number }) => Math.round(run.cpuMicros / count)
    /** The median over the rounds of what `of` reads off each. */
    const median = (of: (round: (typeof measured)[number]) => number) => medianOf(measured.map(of))
    // each round's ratio to three decimals, judged as measured (0.496 is not rounded up into meeting 0.5); the median judged
    const ratios = measured.map(
      ({ baseline, dispatcher }) => Math.floor((rate(dispatcher) / rate(baseline)) * 1000) / 1000
    )
    const ratio = medianOf(ratios)
    return {
      benchmark: "deliveries",
      title: `webhook deliveries: ${count.toLocaleString("en-US")} due deliveries to a local receiver, dispatcher vs a bare undici loop`,
      parameters: {
        deliveries: count,
        endpoints,
        concurrency,
        per_endpoint: perEndpoint,
        warm_up: warmUp,
        rounds,
        body_bytes: Buffer.byteLength(measured[0]!.dispatcher.queued[0]!.body),
        gateway: "in-process",
        receiver: "node:http, same process",
        profiled: profileDir !== undefined
      },
      figures: [
        {
          key: "dispatcher_per_s",
          label: "dispatcher: queued until every delivery recorded succeeded",
          value: median(({ dispatcher }) => rate(dispatcher)),
          unit: "deliveries/s"
        },
        {
          key: "baseline_per_s",
          label: "bare undici loop: first post until the last answer",
          value: median(({ baseline }) => rate(baseline)),
          unit: "posts/s"
        },
        {
          key: "ratio",
          label: "dispatcher / bare undici loop",
          value: ratio,
          unit: "",
          target: { atLeast: targetRatio }
        },
        ...(rounds === 1
          ? []
          : [
              {
                key: "ratio_lowest_round",
                label: "dispatcher / bare undici loop, its lowest round",
                value: Math.min(...ratios),
                unit: ""
              },
              {
                key: "ratio_highest_round",
                label: "dispatcher / bare undici loop, its highest round",
                value: Math.max(...ratios),
                unit: ""
              }
            ]),
        {
          key: "client_per_s",
          label: "the gateway's destination client in the same loop",
          value: median(({ byClient }) => rate(byClient)),
          unit: "posts/s"
        },
        {
          key: "dispatcher_received_per_s",
          label: "dispatcher: first to last request at the receiver",
          value: median(({ dispatcher }) => spanRate(dispatcher.round)),
          unit: "requests/s"
        },
        {
          key: "baseline_received_per_s",
          label: "bare undici loop: first to last request at the receiver",
          value: median(({ baseline }) => spanRate(baseline.round)),
          unit: "requests/s"
        },
        {
          key: "dispatcher_cpu_us_per_delivery",
          label: "dispatcher: this process's CPU per delivery (with the receiver's)",
          value: median(({ dispatcher }) => cpuPer(dispatcher)),
          unit: "µs"
        },
        {
          key: "baseline_cpu_us_per_delivery",
          label: "bare undici loop: this process's CPU per post (with the receiver's)",
          value: median(({ baseline }) => cpuPer(baseline)),
          unit: "µs"
        },
        {
          key: "client_cpu_us_per_delivery",
          label: "destination client loop: this process's CPU per post (with the receiver's)",
          value: median(({ byClient }) => cpuPer(byClient)),
          unit: "µs"
        },
        {
          key: "dispatcher_first_request_ms",
          label: "dispatcher: queued until the first request arrived",
          value: Math.round(median(({ dispatcher }) => dispatcher.firstMillis) * 10) / 10,
          unit: "ms"
        }
      ]
    } satisfies Report
  })
