import { describe, expect, it } from "@effect/vitest"
import type { ChannelId } from "@whatisup/domain"
import * as crypto from "node:crypto"
import { ConfigProvider, Context, Duration, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { SqlClient } from "effect/sql"
import {
  layerLeases,
  Leases as LeasesService,
  presenceCutDelay,
  presenceLockClass
} from "../src/channels/leases.ts"
import { GatewayConfigService, loadConfig } from "../src/config/config.ts"
import { layerDatabase, layerMigrated } from "../src/db/client.ts"
import { newId } from "../src/db/ids.ts"
import { newCustomer } from "./support/admin.ts"
import { type ApiClient, apiClient, connectAll, createChannels } from "./support/api.ts"
import { idleInTransaction, lockTable, sqlFor, testDatabase } from "./support/database.ts"
import { gatewayEnvironment, startGateway } from "./support/gateway.ts"
import { staysTrue, waitFor, waitUntil } from "./support/waits.ts"

/** The database layers of a gateway of `url` with `env` on top of its test environment, built in the scope. */
const gatewayLayers = <A, E>(
  url: string,
  env: Record<string, string>,
  layer: (database: typeof databaseLayers) => Layer.Layer<A, E, GatewayConfigService>
) =>
  Effect.gen(function* () {
    const config = yield* loadConfig.pipe(
      Effect.provideService(
        ConfigProvider.ConfigProvider,
        ConfigProvider.fromEnvRecord(yield* gatewayEnvironment(url, env))
      )
    )
    return yield* Layer.build(
      layer(databaseLayers).pipe(Layer.provide(Layer.succeed(GatewayConfigService, config)))
    )
  })
const databaseLayers = layerMigrated.pipe(Layer.provideMerge(layerDatabase))

/** A node's leases alone (no supervisor), on the database of `url`: the test decides when it claims. */
const leasesOf = (url: string, nodeId: string, ttl = "10s") =>
  Effect.map(
    gatewayLayers(url, { WHATISUP_NODE_ID: nodeId, WHATISUP_LEASE_TTL: ttl }, (database) =>
      layerLeases.pipe(Layer.provide(database))
    ),
    (context) => Context.get(context, LeasesService)
  )

/** The gateway's own database connections (the shared pool), as a gateway of `url` would open them. */
const gatewayPoolOf = (url: string, ttl: string) =>
  Effect.map(
    gatewayLayers(url, { WHATISUP_LEASE_TTL: ttl }, (database) => database),
    (context) => Context.get(context, SqlClient.SqlClient)
  )

/** Channels rows to lease, of a customer of their own, straight in the database. */
const channelRows = (url: string, count: number) =>
  Effect.gen(function* () {
    const sql = yield* sqlFor(url)
    const customer = newId.customer()
    yield* sql`
      INSERT INTO customers (id, name, max_channels, max_api_keys, messages_per_minute, api_requests_per_second)
      VALUES (${customer}, 'leases', ${count}, 1, 60, 10)`
    const ids: Array<ChannelId> = Array.from({ length: count }, () => newId.channel())
    for (const id of ids) yield* sql`INSERT INTO channels (id, customer_id) VALUES (${id}, ${customer})`
    return { sql, ids }
  }).pipe(Effect.orDie)

/** The node takes a presence lock (held until the scope closes), under `preferred` if it is free, and joins under it. */
const joined = (node: LeasesService["Service"], preferred?: number) =>
  Effect.flatMap(node.presence(preferred), (presence) => Effect.as(node.join(presence.key), presence)).pipe(
    Effect.orDie
  )

/** The session holding a node's presence lock now (its backend's pid), if one does. */
const presenceHolder = (sql: SqlClient.SqlClient, nodeId: string) =>
  Effect.map(
    sql<{ pid: number }>`
      SELECT k.pid FROM pg_locks k JOIN gateway_nodes n ON k.objid = n.presence::oid
      WHERE n.node_id = ${nodeId} AND k.locktype = 'advisory' AND k.granted AND k.objsubid = 2
        AND k.classid = ${presenceLockClass}::oid
        AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    (rows) => rows[0]?.pid
  ).pipe(Effect.orDie)

/** Each node's lease expiry (ms since the epoch) and its presence key. */
const nodeRows = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql<{ node_id: string; expires_at: number; presence: number | null }>`
      SELECT node_id, (extract(epoch FROM expires_at) * 1000)::float8 AS expires_at, presence
      FROM gateway_nodes`,
    (rows) => new Map(rows.map((row) => [row.node_id, row]))
  ).pipe(Effect.orDie)

const fresh = (ids: ReadonlyArray<ChannelId>) => ids.map((channelId) => ({ channelId, generation: null }))

/** A gateway with a lease of `ttl` on a database of its own, running `count` channels, each connected. */
const connectedGateway = (ttl: string, count: number) =>
  Effect.gen(function* () {
    const database = yield* testDatabase
    const gateway = yield* startGateway(yield* gatewayEnvironment(database.url, { WHATISUP_LEASE_TTL: ttl }))
    const { client } = yield* newCustomer(gateway, { plan: { max_channels: count } })
    const ids = yield* createChannels(client, count)
    yield* connectAll(client, ids)
    yield* waitUntil(
      "every channel's connection is open",
      Effect.sync(() => ids.every((id) => gateway.whatsapp.isOpen(id)))
    )
    return { database, gateway, ids }
  })

/** The reasons of a channel's `channel.disconnected` events, oldest first. */
const disconnectReasons = (client: ApiClient, channel: ChannelId) =>
  Effect.map(client.events.list({ query: { channel_id: channel, type: "channel.disconnected" } }), (page) =>
    page.data.map((event) => String(event.data.reason)).reverse()
  )

describe("node leases", () => {
  it.live(
    "a hand-over to a joining process, and a gateway's stop, record channel.disconnected with the reason",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const shared = { WHATISUP_MASTER_KEYS: `k1:${crypto.randomBytes(32).toString("base64")}` }
        // node-a in a scope of its own, to stop it before the test ends
        const scopeA = yield* Scope.fork(yield* Scope.Scope)
        const a = yield* startGateway(
          yield* gatewayEnvironment(database.url, { ...shared, WHATISUP_NODE_ID: "node-a" })
        ).pipe(Scope.provide(scopeA))
        const { client, key } = yield* newCustomer(a, { plan: { max_channels: 4 } })
        const ids = yield* createChannels(client, 4)
        yield* connectAll(client, ids)
        yield* waitUntil(
          "every channel's connection is open on node-a",
          Effect.sync(() => ids.every((id) => a.whatsapp.isOpen(id)))
        )
        yield* Effect.forEach(ids, (id, i) => a.whatsapp.pair(id, `+1555000000${i}`))

        const b = yield* startGateway(
          yield* gatewayEnvironment(database.url, { ...shared, WHATISUP_NODE_ID: "node-b" })
        )
        yield* waitUntil(
          "node-b runs its share, two channels",
          Effect.sync(() => ids.filter((id) => b.whatsapp.isOpen(id)).length === 2)
        )
        const moved = ids.filter((id) => b.whatsapp.isOpen(id))
        for (const id of moved) {
          expect(yield* disconnectReasons(client, id), `${id} was handed over`).toEqual([
            expect.stringMatching(/^handover: /)
          ])
        }
        yield* waitUntil(
          "the channels node-b took are connected",
          Effect.map(
            Effect.forEach(moved, (id) => client.channels.get({ params: { id } })),
            (channels) => channels.every((channel) => channel.status === "connected")
          )
        )

        // node-a stops gracefully: its channels say why they dropped, and run on node-b
        const stayed = ids.filter((id) => !moved.includes(id))
        yield* Scope.close(scopeA, Exit.void)
        yield* waitUntil(
          "node-b runs every channel",
          Effect.sync(() => ids.every((id) => b.whatsapp.isOpen(id))),
          { attempts: 400, everyMillis: 25 }
        )
        const throughB = yield* apiClient(b.api, key)
        for (const id of stayed) {
          expect(yield* disconnectReasons(throughB, id), `${id} left with node-a`).toEqual([
            expect.stringMatching(/^gateway_stopping: /)
          ])
        }
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a burst of 500 channel notifications makes a few reconciles, not 500",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const gateway = yield* startGateway(yield* gatewayEnvironment(database.url))
        const reconciles = Effect.promise(() =>
          fetch(`${gateway.admin}/metrics`, {
            headers: { authorization: `Bearer ${gateway.adminToken}` }
          }).then((response) => response.text())
        ).pipe(
          Effect.map((text) =>
            Number(/^whatisup_channel_reconciles_total (\d+)$/m.exec(text)?.[1] ?? Number.NaN)
          )
        )
        const sql = yield* sqlFor(database.url)
        // quiet first: the reconcile at start is done, the next timed one is seconds away
        const before = yield* waitFor("the first reconcile ran", reconciles, (n) => n >= 1)
        // distinct payloads: PostgreSQL folds identical notifications of one transaction into one
        yield* sql`
          SELECT pg_notify('whatisup_channels_changed', 'burst-' || n) FROM generate_series(1, 500) AS n`
        yield* waitFor("the burst wakes the reconciler", reconciles, (n) => n > before)
        yield* staysTrue(
          "a few reconciles for the burst (and perhaps a timed one), not one per notification",
          Effect.map(reconciles, (n) => n - before <= 10),
          { forMillis: 1000 }
        )
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "renewals rewrite the node's one row, never the channels' leases, however many channels run",
    () =>
      Effect.gen(function* () {
        const { database, gateway, ids } = yield* connectedGateway("1s", 40)
        const sql = yield* sqlFor(database.url)
        // every UPDATE writes a new row version, with a new xmin
        const versions = sql<{ key: string; xmin: string }>`
          SELECT channel_id AS key, xmin::text AS xmin FROM channel_leases
          UNION ALL SELECT node_id, xmin::text FROM gateway_nodes ORDER BY key`.pipe(Effect.orDie)
        const before = yield* versions
        expect(before.length).toBe(ids.length + 1)
        // five lease lifetimes: a per-channel renewal would have rewritten every row several times
        const after = yield* waitFor(
          "the node's lease is renewed",
          versions,
          (rows) =>
            rows.find((row) => row.key === gateway.config.nodeId)?.xmin !==
            before.find((row) => row.key === gateway.config.nodeId)?.xmin,
          { attempts: 100, everyMillis: 50 }
        )
        yield* Effect.sleep("5 seconds")
        const later = yield* versions
        const leasesOnly = (rows: ReadonlyArray<{ key: string; xmin: string }>) =>
          rows.filter((row) => row.key !== gateway.config.nodeId)
        expect(leasesOnly(later), "the channels' lease rows are untouched").toEqual(leasesOnly(before))
        expect(leasesOnly(after)).toEqual(leasesOnly(before))
        expect(
          ids.every((id) => gateway.whatsapp.isOpen(id)),
          "and every channel is still connected"
        ).toBe(true)
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a lapsed node's channels are taken only past the grace, by one node alone, under a new generation that fences the old owner off",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        // the first one migrates the database
        const a = yield* leasesOf(database.url, "node-a")
        const b = yield* leasesOf(database.url, "node-b")
        const c = yield* leasesOf(database.url, "node-c")
        const { sql, ids } = yield* channelRows(database.url, 20)
        const [presenceOfA] = yield* Effect.forEach([a, b, c], (node) => joined(node))
        const taken = yield* a.claim(fresh(ids))
        expect(taken.map((lease) => lease.generation)).toEqual(ids.map(() => 1))
        const atFirst = ids.map((channelId) => ({ channelId, generation: 1 }))
        expect(yield* b.claim(atFirst), "a live node's channels are not taken").toEqual([])

        // node-a stops renewing: its lease ran out a moment ago, still inside the grace (2 s of 10 s)
        yield* sql`UPDATE gateway_nodes SET expires_at = now() - interval '1 second' WHERE node_id = 'node-a'`
        expect(yield* b.claim(atFirst), "not within the grace past the expiry").toEqual([])
        expect(yield* b.liveNodes, "a lapsed node no longer counts").toBe(2)

        yield* sql`UPDATE gateway_nodes SET expires_at = now() - interval '2001 milliseconds' WHERE node_id = 'node-a'`
        // two nodes take over at once, having seen the same generation: each channel goes to one of them
        const [byB, byC] = yield* Effect.all([b.claim(atFirst), c.claim(atFirst)], { concurrency: 2 })
        expect([...byB, ...byC].map((lease) => lease.channelId).sort()).toEqual([...ids].sort())
        for (const lease of [...byB, ...byC]) {
          expect(lease.generation).toBe(2)
          expect(lease.takenFrom).toBe("node-a")
        }
        // what node-a still tries to write under its generation is refused
        const stale = yield* Effect.flip(sql.withTransaction(a.check({ channelId: ids[0]!, generation: 1 })))
        expect(stale._tag).toBe("LeaseLost")

        // node-a cannot renew a lapsed lease: it must start again, holding nothing
        expect(yield* a.renew).toBe(false)
        yield* a.join(presenceOfA!.key)
        expect(yield* a.renew).toBe(true)
        expect(yield* a.claim(atFirst), "an old generation claims nothing").toEqual([])
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a node whose presence lock nobody holds has its lease cut short by a judging node, to a moment ahead; it renews if it takes its lock back by then, else it lapses; a node that holds its lock, or never took one, is not judged",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const a = yield* leasesOf(database.url, "node-a")
        const b = yield* leasesOf(database.url, "node-b")
        const { sql } = yield* channelRows(database.url, 1)
        // node-a's presence in a scope of its own: closing it ends the session, as a process's death does
        const sessionOfA = () => Effect.flatMap(Scope.Scope, (scope) => Scope.fork(scope))
        let scopeA = yield* sessionOfA()
        const presenceOfA = yield* joined(a).pipe(Scope.provide(scopeA))
        const presenceOfB = yield* joined(b)
        yield* sql`INSERT INTO gateway_nodes (node_id, expires_at) VALUES ('node-without-presence', now() + interval '1 hour')`
        const before = yield* nodeRows(sql)
        const dbNow = Effect.map(
          sql<{ now: number }>`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now`,
          (rows) => rows[0]!.now
        ).pipe(Effect.orDie)
        const judged = Effect.gen(function* () {
          const from = yield* dbNow
          yield* presenceOfB.check(true).pipe(Effect.orDie)
          return { from, to: yield* dbNow }
        })
        const cutDelay = Duration.toMillis(presenceCutDelay(Duration.seconds(10)))

        yield* judged
        expect((yield* nodeRows(sql)).get("node-a")!.expires_at, "node-a holds its lock").toBe(
          before.get("node-a")!.expires_at
        )

        // node-a's session ends: a check that does not judge cuts nothing; one that judges cuts it
        yield* Scope.close(scopeA, Exit.void)
        yield* waitUntil(
          "node-a's session is gone",
          Effect.map(presenceHolder(sql, "node-a"), (pid) => pid === undefined)
        )
        yield* presenceOfB.check(false).pipe(Effect.orDie)
        expect((yield* nodeRows(sql)).get("node-a")!.expires_at).toBe(before.get("node-a")!.expires_at)
        const first = yield* judged
        const cut = (yield* nodeRows(sql)).get("node-a")!.expires_at
        expect(cut, "cut short to a moment ahead").toBeGreaterThanOrEqual(first.from + cutDelay)
        expect(cut).toBeLessThanOrEqual(first.to + cutDelay)
        expect((yield* nodeRows(sql)).get("node-without-presence")!.expires_at).toBe(
          before.get("node-without-presence")!.expires_at
        )

        // node-a takes the same lock back before that moment: its renewal stands, and it is judged no more
        scopeA = yield* sessionOfA()
        const again = yield* a.presence(presenceOfA.key).pipe(Scope.provide(scopeA), Effect.orDie)
        expect(again.key).toBe(presenceOfA.key)
        expect(yield* a.renew).toBe(true)
        expect((yield* nodeRows(sql)).get("node-a")!.expires_at).toBeGreaterThan(cut)
        yield* judged
        expect((yield* nodeRows(sql)).get("node-a")!.expires_at).toBeGreaterThan(cut)

        // its session ends again, and it does not come back in time: the lease lapses, past renewing
        yield* Scope.close(scopeA, Exit.void)
        yield* waitUntil(
          "node-a's session is gone",
          Effect.map(presenceHolder(sql, "node-a"), (pid) => pid === undefined)
        )
        yield* judged
        yield* waitUntil(
          "node-a no longer counts",
          Effect.map(b.liveNodes, (n) => n === 2),
          { attempts: 200, everyMillis: 25 }
        )
        expect(yield* a.renew).toBe(false)
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a gateway whose database session the server ends takes its presence lock back at once and keeps every channel connected",
    () =>
      Effect.gen(function* () {
        // a lease long enough that the lock comes back well within half a grace on a loaded machine
        const { database, gateway, ids } = yield* connectedGateway("10s", 5)
        const sql = yield* sqlFor(database.url)
        const nodeId = gateway.config.nodeId
        const before = (yield* nodeRows(sql)).get(nodeId)!
        const holder = yield* presenceHolder(sql, nodeId)
        expect(holder).toBeDefined()
        yield* sql`SELECT pg_terminate_backend(${holder!})`
        yield* waitUntil(
          "another session holds the same presence lock",
          Effect.map(presenceHolder(sql, nodeId), (pid) => pid !== undefined && pid !== holder)
        )
        expect((yield* nodeRows(sql)).get(nodeId)!.presence, "under the same key").toBe(before.presence)
        // through a few renewals: nothing was dropped, nothing connected again
        yield* staysTrue(
          "every channel stays connected on its first connection",
          Effect.sync(() =>
            ids.every(
              (id) =>
                gateway.whatsapp.isOpen(id) &&
                gateway.whatsapp.connects(id) === 1 &&
                gateway.whatsapp.closes(id) === 0
            )
          ),
          { forMillis: 2_000 }
        )
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a write left open by a frozen owner holds back that one channel, not the takeover of the others; the server ends it",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const a = yield* leasesOf(database.url, "node-a")
        const b = yield* leasesOf(database.url, "node-b")
        const { sql, ids } = yield* channelRows(database.url, 3)
        yield* Effect.forEach([a, b], (node) => joined(node))
        yield* a.claim(fresh(ids))
        // node-a froze in the middle of a fenced write: its transaction holds the lease row of the first channel
        const frozen = yield* sqlFor(database.url)
        // (what a fenced write holds until it commits: a share lock on the lease row)
        yield* frozen
          .withTransaction(
            Effect.andThen(
              frozen`SELECT 1 FROM channel_leases WHERE channel_id = ${ids[0]!} FOR SHARE`,
              Effect.never
            )
          )
          .pipe(Effect.forkScoped)
        yield* waitUntil(
          "the write holds its lock",
          idleInTransaction(sql, "%FROM channel_leases WHERE channel_id = $1 FOR SHARE%")
        )
        yield* sql`UPDATE gateway_nodes SET expires_at = now() - interval '1 minute' WHERE node_id = 'node-a'`
        const atFirst = ids.map((channelId) => ({ channelId, generation: 1 }))
        const taken = yield* b.claim(atFirst)
        expect(taken.map((lease) => lease.channelId).sort()).toEqual(ids.slice(1).sort())

        // the gateway's own connections end such a transaction: 2 × the lease's life, at least 10 s
        const pool = yield* gatewayPoolOf(database.url, "2s")
        const setting = yield* pool<{
          value: string
        }>`SELECT current_setting('idle_in_transaction_session_timeout') AS value`.pipe(Effect.orDie)
        expect(setting[0]!.value).toBe("10s")
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a gateway stops though its leases cannot be handed back (their rows locked): they lapse instead",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const scope = yield* Scope.make()
        const gateway = yield* startGateway(
          yield* gatewayEnvironment(database.url, { WHATISUP_LEASE_TTL: "2s" })
        ).pipe(Scope.provide(scope))
        const { client } = yield* newCustomer(gateway, { plan: { max_channels: 2 } })
        const ids = yield* createChannels(client, 2)
        yield* connectAll(client, ids)
        yield* waitUntil(
          "every channel's connection is open",
          Effect.sync(() => ids.every((id) => gateway.whatsapp.isOpen(id)))
        )
        const sql = yield* sqlFor(database.url)
        // another connection holds the lease rows: the stop's hand-back waits past its time limit
        const holder = yield* sqlFor(database.url)
        yield* holder
          .withTransaction(Effect.andThen(holder`SELECT 1 FROM channel_leases FOR UPDATE`, Effect.never))
          .pipe(Effect.forkScoped)
        yield* waitUntil(
          "the lease rows are locked",
          idleInTransaction(sql, "%FROM channel_leases FOR UPDATE%")
        )
        expect(Exit.isSuccess(yield* Effect.exit(Scope.close(scope, Exit.void)))).toBe(true)
        // not handed back: still this node's, to lapse
        const owners = yield* sql<{ owner: string | null }>`
          SELECT owner FROM channel_leases WHERE channel_id IN ${sql.in(ids)}`.pipe(Effect.orDie)
        expect(owners).toHaveLength(2)
        expect(owners.every((row) => row.owner !== null)).toBe(true)
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a gateway that starts while the node table is locked waits for it and joins, instead of stopping on the first slow statement",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        // migrated by a first gateway's pool, so the starting one goes straight to joining
        yield* gatewayPoolOf(database.url, "2s")
        const sql = yield* sqlFor(database.url)
        const lock = yield* lockTable(sql, "gateway_nodes", "EXCLUSIVE")
        const starting = yield* startGateway(
          yield* gatewayEnvironment(database.url, { WHATISUP_LEASE_TTL: "2s", WHATISUP_NODE_ID: "late" })
        ).pipe(Effect.forkScoped)
        // each try runs out after 400 ms (a fifth of the lease); several go by while the lock is held
        yield* waitUntil(
          "the join waits on the lock",
          Effect.map(lock.waiting, (n) => n > 0)
        )
        yield* staysTrue(
          "the gateway is still starting",
          Effect.sync(() => starting.pollUnsafe() === undefined),
          { forMillis: 1500 }
        )
        yield* lock.release
        const gateway = yield* Fiber.join(starting)
        const nodes = yield* sql<{ node_id: string }>`SELECT node_id FROM gateway_nodes`.pipe(Effect.orDie)
        expect(nodes.map((row) => row.node_id)).toEqual(["late"])
        expect((yield* Effect.promise(() => fetch(`${gateway.api}/readyz`))).status).toBe(200)
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a node whose lease lapsed closes every socket, and takes its channels back under new generations",
    () =>
      Effect.gen(function* () {
        const { database, gateway, ids } = yield* connectedGateway("2s", 5)
        const sql = yield* sqlFor(database.url)
        const generations = sql<{ generation: number }>`
          SELECT generation::int AS generation FROM channel_leases ORDER BY channel_id`.pipe(
          Effect.map((rows) => rows.map((row) => row.generation)),
          Effect.orDie
        )
        const before = yield* generations
        // as if the node had been frozen past its lease: its next renewal finds it lapsed
        yield* sql`UPDATE gateway_nodes SET expires_at = now() - interval '1 millisecond'`
        yield* waitUntil(
          "every channel connected again, under a new generation",
          Effect.map(
            generations,
            (now) =>
              now.every((generation, i) => generation > before[i]!) &&
              ids.every((id) => gateway.whatsapp.isOpen(id))
          ),
          { attempts: 200, everyMillis: 50 }
        )
        for (const id of ids) expect(gateway.whatsapp.connects(id), `${id} connected twice`).toBe(2)
      }).pipe(Effect.scoped),
    60_000
  )
})
