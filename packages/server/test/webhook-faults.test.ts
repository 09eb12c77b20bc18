import { describe, expect, it } from "@effect/vitest"
import type { EventId, WebhookEndpointId } from "@whatisup/domain"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import { Webhook } from "standardwebhooks"
import { newCustomer } from "./support/admin.ts"
import { type ApiClient, apiClient } from "./support/api.ts"
import { sqlFor, testDatabase } from "./support/database.ts"
import { gatewayEnvironment } from "./support/gateway.ts"
import { spawnGateway, waitReady } from "./support/process.ts"
import { answer, type Received, startReceiver } from "./support/receiver.ts"
import { waitFor, waitUntil } from "./support/waits.ts"

type GatewayEnvironment = Effect.Success<ReturnType<typeof gatewayEnvironment>>

const apiOf = (env: GatewayEnvironment) => `http://127.0.0.1:${env.PORT}`

/** One test database and a key ring shared by every gateway process on it; each process posts to 127.0.0.1. */
const onOneDatabase = Effect.gen(function* () {
  const database = yield* testDatabase
  const sql = yield* sqlFor(database.url)
  const shared = {
    WHATISUP_MASTER_KEYS: `k1:${crypto.randomBytes(32).toString("base64")}`,
    WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32"
  }
  /** The environment of a gateway process named `nodeId`: its own ports and data dir, the shared database and keys. */
  const environment = (nodeId: string, extra: Record<string, string> = {}) =>
    gatewayEnvironment(database, { ...shared, WHATISUP_NODE_ID: nodeId, ...extra })
  /** A real gateway OS process, ready to serve. */
  const start = (env: GatewayEnvironment) =>
    Effect.tap(spawnGateway(env), (gateway) => waitReady(gateway, apiOf(env)))
  /** A customer created by the operator through this process's admin listener. */
  const customerOn = (env: GatewayEnvironment, name: string) =>
    newCustomer(
      { api: apiOf(env), admin: `http://${env.WHATISUP_ADMIN_LISTEN}`, adminToken: env.WHATISUP_ADMIN_TOKEN },
      { name }
    )
  /** How many deliveries are in each status, across every customer. */
  const statuses = Effect.map(
    sql<{ status: string; n: number }>`SELECT status, count(*)::int AS n FROM deliveries GROUP BY status`,
    (rows) => Object.fromEntries(rows.map((row) => [row.status, row.n])) as Record<string, number>
  ).pipe(Effect.orDie)
  return { sql, environment, start, customerOn, statuses }
})

/** `count` webhook.test events posted to one endpoint through the API; their event ids. */
const testEvents = (client: ApiClient, endpointId: WebhookEndpointId, count: number) =>
  Effect.forEach(
    Array.from({ length: count }, (_, i) => i),
    () => Effect.map(client.webhooks.test({ params: { id: endpointId } }), (delivery) => delivery.event_id),
    { concurrency: 16 }
  )

const webhookIdOf = (received: Received) => String(received.headers["webhook-id"])

/** How many times each webhook-id reached the receiver. */
const arrivals = (received: ReadonlyArray<Received>) => {
  const counts = new Map<string, number>()
  for (const entry of received) counts.set(webhookIdOf(entry), (counts.get(webhookIdOf(entry)) ?? 0) + 1)
  return counts
}

/** The event ids that never reached the receiver. */
const missing = (events: ReadonlyArray<EventId>, received: ReadonlyArray<Received>) => {
  const seen = arrivals(received)
  return events.filter((id) => !seen.has(id))
}

const allSucceeded = (total: number) => (seen: Record<string, number>) => seen["succeeded"] === total

describe("webhook deliveries through crashes, shared work and hanging receivers", () => {
  it.live(
    "the gateway killed with SIGKILL during 2,000 deliveries and restarted: every event reaches the receiver at least once with the same webhook-id; none is lost",
    () =>
      Effect.gen(function* () {
        const total = 2000
        const { sql, environment, start, customerOn, statuses } = yield* onOneDatabase
        // many attempts in flight at the kill: up to 32 to the one endpoint
        const env = yield* environment("node-a", { WHATISUP_DISPATCH_PER_ENDPOINT: "32" })
        let answered = 0
        // slower than the API makes events, and never more than half of them before the kill, so the kill comes mid-way
        const receiver = yield* startReceiver(() =>
          ++answered <= total / 2 ? answer(200, { body: "ok", delayMillis: 400 }) : { _tag: "Hang" }
        )
        const first = yield* start(env)
        const { client } = yield* customerOn(env, "Crash survivor")
        const endpoint = yield* client.webhooks.create({
          headers: {},
          payload: { url: `${receiver.url}/hooks` }
        })
        const events = yield* testEvents(client, endpoint.id, total)
        expect(new Set(events).size).toBe(total)

        const atKill = yield* waitFor(
          "the receiver has some of the events",
          Effect.sync(() => arrivals(receiver.received).size),
          (distinct) => distinct >= total / 4,
          { attempts: 600, everyMillis: 25 }
        )
        first.child.kill("SIGKILL")
        yield* Effect.promise(() => first.exited)
        const killedAt = Date.now()
        expect(atKill, "killed before every event had arrived").toBeLessThan(total)
        const inFlight = new Set(
          (yield* sql<{ event_id: string }>`
            SELECT event_id FROM deliveries WHERE status = 'pending' AND claimed_by = 'node-a'`).map(
            (row) => row.event_id
          )
        )
        expect(inFlight.size, "attempts in flight at the kill").toBeGreaterThan(0)
        // the rest arrive quickly, so recovery is not spent waiting for the receiver
        receiver.setBehaviour(() => answer(200, { body: "ok" }))

        yield* start(env)
        const readyAt = Date.now()
        yield* waitFor("every delivery succeeded after the restart", statuses, allSucceeded(total), {
          attempts: 400,
          everyMillis: 50
        })
        const recoveredAt = Date.now()

        expect(missing(events, receiver.received), "events that never reached the receiver").toEqual([])
        const counts = arrivals(receiver.received)
        expect([...counts.keys()].filter((id) => !events.includes(id as EventId))).toEqual([])
        // every request, duplicates included, is signed for its webhook-id and carries that event's body
        const verifier = new Webhook(endpoint.secret)
        const bodyOf = new Map<string, string>()
        for (const entry of receiver.received) {
          const event = verifier.verify(entry.body, entry.headers as Record<string, string>) as {
            type: string
          }
          expect(event.type).toBe("webhook.test")
          const earlier = bodyOf.get(webhookIdOf(entry))
          if (earlier === undefined) bodyOf.set(webhookIdOf(entry), entry.body)
          else expect(entry.body, `the body of a second ${webhookIdOf(entry)}`).toBe(earlier)
        }
        // what the dead process had recorded delivered is never posted again: only what it had in flight,
        // or had recorded as a failed attempt (a receiver that hung past the attempt's timeout, when the
        // kill comes late on a loaded machine), may arrive twice
        const retried = new Set(
          (yield* sql<{ event_id: string }>`
            SELECT DISTINCT d.event_id FROM deliveries d JOIN delivery_attempts a ON a.delivery_id = d.id
            WHERE a.node_id = 'node-a' AND a.attempted_at < to_timestamp(${killedAt} / 1000.0)
              AND (a.status_code IS NULL OR a.status_code NOT BETWEEN 200 AND 299)`).map(
            (row) => row.event_id
          )
        )
        const twice = [...counts].filter(([, n]) => n > 1).map(([id]) => id)
        expect(twice.filter((id) => !inFlight.has(id) && !retried.has(id))).toEqual([])
        const duplicates = receiver.received.length - counts.size
        yield* Effect.logInfo(
          `SIGKILL with ${atKill}/${total} arrived and ${inFlight.size} claimed by the dead process: ` +
            `${duplicates} duplicates; ready ${readyAt - killedAt} ms after the kill, every delivery succeeded ` +
            `${recoveredAt - killedAt} ms after the kill (${recoveredAt - readyAt} ms after ready)`
        )
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "two gateway processes sharing the work: no attempt made twice at the same moment",
    () =>
      Effect.gen(function* () {
        const eventsPerEndpoint = 800
        const { sql, environment, start, customerOn, statuses } = yield* onOneDatabase
        const envA = yield* environment("node-a")
        const envB = yield* environment("node-b")
        yield* start(envA)
        yield* start(envB)
        const receiver = yield* startReceiver(() =>
          answer(200, { body: "ok", delayMillis: 20 + Math.floor(Math.random() * 31) })
        )
        const { client, key } = yield* customerOn(envA, "Shared work")
        const endpoints = yield* Effect.forEach([1, 2, 3], (n) =>
          client.webhooks.create({ headers: {}, payload: { url: `${receiver.url}/hooks/${n}` } })
        )
        const clientB = yield* apiClient(apiOf(envB), key)
        // the events are made through both processes at once, as a load balancer would spread them
        const events = (yield* Effect.forEach(
          endpoints.flatMap((endpoint) => [
            testEvents(client, endpoint.id, eventsPerEndpoint / 2),
            testEvents(clientB, endpoint.id, eventsPerEndpoint / 2)
          ]),
          (made) => made,
          { concurrency: "unbounded" }
        )).flat()
        const total = endpoints.length * eventsPerEndpoint
        yield* waitFor("every delivery succeeded", statuses, allSucceeded(total), {
          attempts: 400,
          everyMillis: 50
        })

        expect([...receiver.overlaps], "webhook-ids in flight twice at once").toEqual([])
        expect(missing(events, receiver.received), "events that never reached the receiver").toEqual([])
        // with no fault, each event is posted once
        expect(receiver.received.length).toBe(total)
        const byNode = yield* sql<{ node_id: string; n: number }>`
        SELECT node_id, count(*)::int AS n FROM delivery_attempts GROUP BY node_id ORDER BY node_id`
        expect(byNode.map((row) => row.node_id)).toEqual(["node-a", "node-b"])
        expect(byNode.reduce((sum, row) => sum + row.n, 0)).toBe(total)
        yield* Effect.logInfo(
          `${total} deliveries by two processes: ${byNode.map((row) => `${row.node_id} ${row.n}`).join(", ")}`
        )
      }).pipe(Effect.scoped),
    120_000
  )

  it.live("a receiver that hangs does not slow deliveries to another customer's endpoint", () =>
    Effect.gen(function* () {
      const hung = 200
      const batch = 100
      // WHATISUP_DISPATCH_PER_ENDPOINT's default, which the gateway runs with here
      const perEndpoint = 8
      const { sql, environment, start, customerOn } = yield* onOneDatabase
      const env = yield* environment("node-a")
      yield* start(env)
      const hanging = yield* startReceiver(() => ({ _tag: "Hang" }))
      const prompt = yield* startReceiver()
      const a = yield* customerOn(env, "Hanging receiver")
      const b = yield* customerOn(env, "Prompt receiver")
      const endpointA = yield* a.client.webhooks.create({ headers: {}, payload: { url: hanging.url } })
      const endpointB = yield* b.client.webhooks.create({ headers: {}, payload: { url: prompt.url } })
      const succeededOf = (endpointId: WebhookEndpointId) =>
        Effect.map(
          sql<{ n: number }>`
            SELECT count(*)::int AS n FROM deliveries WHERE endpoint_id = ${endpointId} AND status = 'succeeded'`,
          (rows) => rows[0]!.n
        ).pipe(Effect.orDie)
      /** Posts a batch of B's events and waits, checking `attempts` times, for every one to succeed; how long that took. */
      const deliveredToB = (done: number, label: string, attempts: number) =>
        Effect.gen(function* () {
          const started = Date.now()
          yield* testEvents(b.client, endpointB.id, batch)
          yield* waitUntil(
            label,
            Effect.map(succeededOf(endpointB.id), (n) => n === done + batch),
            { attempts, everyMillis: 25 }
          )
          return Date.now() - started
        })

      const control = yield* deliveredToB(0, "the control batch to B succeeded, nothing hanging", 400)

      // more of A's deliveries than the dispatcher runs at once, all of them stuck behind a receiver that never answers
      yield* testEvents(a.client, endpointA.id, hung)
      yield* waitUntil(
        "A's receiver holds as many requests as one endpoint may have in flight",
        Effect.sync(() => hanging.received.length >= perEndpoint)
      )
      // the same batch again, given a few times what it took with nothing hanging (at least 2 s)
      const withHang = yield* deliveredToB(
        batch,
        "B's batch succeeded while A's receiver hangs",
        Math.ceil(Math.max(5 * control, 2000) / 25)
      )

      // A's attempts are all still open: B did not wait for any of them to end
      const aNow = yield* sql<{ pending: number; attempted: number }>`
        SELECT count(*) FILTER (WHERE d.status = 'pending')::int AS pending,
          (SELECT count(*)::int FROM delivery_attempts t JOIN deliveries x ON x.id = t.delivery_id
           WHERE x.endpoint_id = ${endpointA.id}) AS attempted
        FROM deliveries d WHERE d.endpoint_id = ${endpointA.id}`
      expect(aNow[0]).toEqual({ pending: hung, attempted: 0 })
      expect(hanging.received.length, "no more of A's than the per-endpoint limit were started").toBe(
        perEndpoint
      )
      expect(prompt.received.length).toBe(2 * batch)
      yield* Effect.logInfo(
        `${batch} deliveries to B: ${control} ms alone, ${withHang} ms with ${hung} of A's stuck behind a hanging receiver`
      )
    }).pipe(Effect.scoped)
  )
})
