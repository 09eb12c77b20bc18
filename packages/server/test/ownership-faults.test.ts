import { describe, expect, it } from "@effect/vitest"
import type { ChannelId } from "@whatisup/domain"
import type { Simulator } from "@whatisup/wa-simulator"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as net from "node:net"
import { newCustomer } from "./support/admin.ts"
import { type ApiClient, apiClient } from "./support/api.ts"
import { sqlFor, testDatabase } from "./support/database.ts"
import { gatewayEnvironment } from "./support/gateway.ts"
import { type GatewayProcess, spawnGateway, waitReady } from "./support/process.ts"
import { deliverTo, pairedChannel, simulator } from "./support/simulator.ts"
import { pause, waitFor, waitUntil } from "./support/waits.ts"

const leaseTtlSeconds = 3
const phones = ["447700900201", "447700900202", "447700900203", "447700900204"]

/**
 * A TCP proxy in front of PostgreSQL that can stop forwarding, as a network that hangs does: the
 * connections stay open and nothing moves either way until it thaws. Or it can drop every connection
 * and refuse new ones (both ends see them close, as when a process's host is cut off) until restored.
 * Or it can sever them: the server's end closes, the client's stays open and hears nothing (a firewall
 * that forgot the connection), and new ones hang, until restored.
 */
const freezableProxy = (target: URL) =>
  Effect.acquireRelease(
    Effect.promise(
      () =>
        new Promise<{
          readonly url: string
          freeze: () => void
          thaw: () => void
          drop: () => void
          sever: () => void
          restore: () => void
          close: () => void
        }>((resolve) => {
          const pairs = new Set<readonly [net.Socket, net.Socket]>()
          let frozen = false
          let refusing = false
          let severing = false
          /** Client ends left open and unanswered. */
          const silenced = new Set<net.Socket>()
          const silence = (client: net.Socket) => {
            client
              .removeAllListeners("close")
              .removeAllListeners("error")
              .on("error", () => undefined)
            silenced.add(client.pause())
          }
          const destroy = ([client, upstream]: readonly [net.Socket, net.Socket]) => {
            client.destroy()
            upstream.destroy()
          }
          const link = ([client, upstream]: readonly [net.Socket, net.Socket]) => {
            client.pipe(upstream)
            upstream.pipe(client)
          }
          const cut = ([client, upstream]: readonly [net.Socket, net.Socket]) => {
            client.unpipe(upstream)
            upstream.unpipe(client)
            client.pause()
            upstream.pause()
          }
          const server = net.createServer((client) => {
            if (refusing) return void client.destroy()
            if (severing) return void silence(client)
            const upstream = net.connect(Number(target.port || 5432), target.hostname)
            const pair = [client, upstream] as const
            pairs.add(pair)
            const drop = () => {
              pairs.delete(pair)
              client.destroy()
              upstream.destroy()
            }
            client.on("error", drop).on("close", drop)
            upstream.on("error", drop).on("close", drop)
            if (frozen) cut(pair)
            else link(pair)
          })
          server.listen(0, "127.0.0.1", () => {
            const url = new URL(target)
            url.hostname = "127.0.0.1"
            url.port = String((server.address() as net.AddressInfo).port)
            resolve({
              url: url.toString(),
              freeze: () => {
                frozen = true
                pairs.forEach(cut)
              },
              thaw: () => {
                frozen = false
                pairs.forEach(link)
              },
              drop: () => {
                refusing = true
                pairs.forEach(destroy)
              },
              sever: () => {
                severing = true
                for (const pair of pairs) {
                  const [client, upstream] = pair
                  pairs.delete(pair)
                  client.unpipe(upstream)
                  upstream.unpipe(client)
                  silence(client)
                  upstream
                    .removeAllListeners("close")
                    .removeAllListeners("error")
                    .on("error", () => undefined)
                  upstream.destroy()
                }
              },
              restore: () => {
                refusing = false
                severing = false
                for (const client of silenced) client.destroy()
                silenced.clear()
              },
              close: () => {
                pairs.forEach(destroy)
                for (const client of silenced) client.destroy()
                server.close()
              }
            })
          })
        })
    ),
    (proxy) => Effect.sync(() => proxy.close())
  )

interface Lease {
  readonly channel_id: ChannelId
  readonly owner: string
  readonly expires_at: number
}

/** Two gateway processes on one database, real Baileys against the simulator, four phones paired. */
const twoGateways = (options: { readonly proxied?: "node-a"; readonly leaseTtlSeconds?: number } = {}) =>
  Effect.gen(function* () {
    const sim = yield* simulator
    const database = yield* testDatabase
    const sql = yield* sqlFor(database.url)
    const proxy = yield* freezableProxy(new URL(database.url))
    const shared = {
      WHATISUP_MASTER_KEYS: `k1:${crypto.randomBytes(32).toString("base64")}`,
      WHATISUP_ADMIN_TOKEN: crypto.randomBytes(32).toString("base64url"),
      WHATISUP_LEASE_TTL: `${options.leaseTtlSeconds ?? leaseTtlSeconds}s`,
      WHATISUP_WA_WS_URL: sim.url
    }
    const envA = yield* gatewayEnvironment(options.proxied === "node-a" ? proxy.url : database.url, {
      ...shared,
      WHATISUP_NODE_ID: "node-a"
    })
    const envB = yield* gatewayEnvironment(database.url, { ...shared, WHATISUP_NODE_ID: "node-b" })
    const apiOf = (env: { readonly PORT: string }) => `http://127.0.0.1:${env.PORT}`
    const start = (env: typeof envA) =>
      Effect.tap(spawnGateway(env), (gateway) => waitReady(gateway, apiOf(env)))
    const a = yield* start(envA)
    const b = yield* start(envB)
    const { client, key } = yield* newCustomer(
      {
        api: apiOf(envB),
        admin: `http://${envB.WHATISUP_ADMIN_LISTEN}`,
        adminToken: envB.WHATISUP_ADMIN_TOKEN
      },
      { name: "Two gateways", plan: { max_channels: phones.length } }
    )
    const channels = yield* Effect.forEach(phones, (phone) => pairedChannel(client, sim, phone), {
      concurrency: 2
    })
    const leases = Effect.map(
      sql<Lease>`
        SELECT channel_id, owner, (extract(epoch FROM expires_at) * 1000)::float8 AS expires_at
        FROM held_channel_leases ORDER BY channel_id`,
      (rows) => rows.map((row) => ({ ...row }))
    ).pipe(Effect.orDie)
    yield* waitUntil(
      "both processes hold leases",
      Effect.map(leases, (rows) => new Set(rows.map((row) => row.owner)).size === 2),
      { attempts: 400, everyMillis: 50 }
    )
    /** The same customer through node-a's own API, for when node-b is gone. */
    const clientA = yield* apiClient(apiOf(envA), key)
    return { sim, sql, proxy, a, b, envA, envB, start, client, clientA, channels, leases }
  })

/** How many live connections to WhatsApp each phone has, and each channel's status. */
const observe = (sim: Simulator, client: ApiClient, channels: ReadonlyArray<ChannelId>) =>
  Effect.map(
    Effect.forEach(channels, (id) =>
      Effect.map(client.channels.get({ params: { id } }), (channel) => channel.status).pipe(
        Effect.orElseSucceed(() => "unanswered")
      )
    ),
    (statuses) => ({ connections: phones.map((phone) => sim.connectionsOf(phone).length), statuses })
  )

/** Waits until every phone has exactly one live connection to WhatsApp and every channel says connected. */
const settled = (sim: Simulator, client: ApiClient, channels: ReadonlyArray<ChannelId>, label: string) =>
  waitFor(
    label,
    observe(sim, client, channels),
    (seen) =>
      seen.connections.every((n) => n === 1) && seen.statuses.every((status) => status === "connected"),
    { attempts: 600, everyMillis: 50 }
  )

const killed = (gateway: GatewayProcess, signal: NodeJS.Signals) =>
  Effect.promise(() => {
    gateway.child.kill(signal)
    return gateway.exited
  })

describe("one WhatsApp socket per phone number, whatever the processes and the database do", () => {
  it.live(
    "a graceful stop hands over, a SIGKILL is taken over, a restart takes its own back: never two sockets of one number",
    () =>
      Effect.gen(function* () {
        const { sim, a, b, envA, start, client, clientA, channels, leases } = yield* twoGateways()
        expect(yield* killed(a, "SIGTERM")).toBe(0)
        yield* settled(sim, client, channels, "after node-a's SIGTERM, node-b runs every channel")
        expect((yield* leases).every((lease) => lease.owner === "node-b")).toBe(true)

        yield* start(envA)
        yield* waitUntil(
          "node-a, started again, takes its share back",
          Effect.map(leases, (rows) =>
            rows.some((row) => row.owner === "node-a" && row.expires_at > Date.now())
          ),
          { attempts: 400, everyMillis: 50 }
        )
        yield* settled(sim, client, channels, "after the hand-back, every phone once")

        yield* killed(b, "SIGKILL")
        yield* settled(sim, clientA, channels, "after node-b's SIGKILL, node-a runs every channel")
        expect(sim.overlaps(), "no two live connections of one number, ever").toEqual([])
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "a process frozen longer than its lease resumes and closes its sockets having sent nothing; the new owner stays connected",
    () =>
      Effect.gen(function* () {
        const { sim, a, client, channels, leases } = yield* twoGateways()
        const ofA = (yield* leases)
          .filter((lease) => lease.owner === "node-a")
          .map((lease) => lease.channel_id)
        expect(ofA.length).toBeGreaterThan(0)

        a.child.kill("SIGSTOP")
        yield* waitUntil(
          "node-b takes over every channel of the frozen node-a",
          Effect.map(leases, (rows) => rows.every((row) => row.owner === "node-b")),
          { attempts: 600, everyMillis: 50 }
        )
        yield* waitUntil(
          "node-b logs in to WhatsApp for every channel",
          Effect.map(leases, () => sim.overlaps().filter((overlap) => overlap.ongoing).length === ofA.length),
          { attempts: 600, everyMillis: 50 }
        )
        // a message reaches every live connection of those numbers, the frozen ones too: a resumed
        // socket would acknowledge it at once, unless it knows its lease may have lapsed
        for (const overlap of sim.overlaps()) {
          yield* deliverTo(sim, overlap.phoneNumber, {
            from: "447700900299",
            message: { conversation: "while you slept" }
          })
        }
        const resumedAt = sim.now()
        a.child.kill("SIGCONT")
        const overlaps = yield* waitFor(
          "the resumed node-a closes every socket it had",
          Effect.sync(() => sim.overlaps()),
          (seen) => seen.length === ofA.length && seen.every((overlap) => !overlap.ongoing),
          { attempts: 400, everyMillis: 25 }
        )
        for (const overlap of overlaps) {
          // the older connection is the frozen one: between the new owner's login and its close, nothing
          expect(overlap.older.stanzas, `what ${overlap.phoneNumber}'s frozen socket sent`).toEqual([])
          expect(overlap.older.closedAt).toBeGreaterThan(resumedAt)
        }
        yield* pause(1000)
        yield* settled(sim, client, channels, "every channel stays connected on node-b")
        expect(sim.overlaps().length, "no overlap beyond the freeze").toBe(ofA.length)
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "the node leases table locked longer than a lease: every socket closes before its lease expires, and every channel comes back once",
    () =>
      Effect.gen(function* () {
        const { sim, sql, client, channels, leases } = yield* twoGateways()
        const before = yield* leases
        const stuck = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              // writers wait (renewals and claims), readers do not
              yield* sql`LOCK TABLE gateway_nodes IN EXCLUSIVE MODE`
              const lockedAt = sim.now()
              const expiries = yield* leases
              yield* waitUntil(
                "every socket to WhatsApp is closed while the leases cannot be renewed",
                Effect.sync(() => phones.every((phone) => sim.connectionsOf(phone).length === 0)),
                { attempts: 400, everyMillis: 25 }
              )
              yield* pause(leaseTtlSeconds * 1000)
              return { lockedAt, expiries }
            })
          )
          .pipe(Effect.orDie)
        expect(stuck.expiries.map((lease) => lease.channel_id)).toEqual(
          before.map((lease) => lease.channel_id)
        )
        const expiryOf = new Map(stuck.expiries.map((lease) => [lease.channel_id, lease.expires_at]))
        const phoneOf = new Map(channels.map((id, i) => [id, phones[i]!]))
        for (const [id, phone] of phoneOf) {
          const closed = sim
            .connectionHistory(phone)
            .filter(
              (connection) => connection.loggedInAt < stuck.lockedAt && connection.closedAt !== undefined
            )
          expect(closed.length, `${phone} was connected when the table was locked`).toBeGreaterThan(0)
          for (const connection of closed) {
            expect(connection.closedAt!, `${phone}'s socket closed before its lease expired`).toBeLessThan(
              expiryOf.get(id)!
            )
          }
        }
        yield* settled(sim, client, channels, "with the table unlocked, every channel connected once again")
        expect(sim.overlaps()).toEqual([])
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "one process cut off from its database closes its sockets before its leases expire; the other takes over with no overlap",
    () =>
      Effect.gen(function* () {
        const { sim, proxy, client, channels, leases } = yield* twoGateways({ proxied: "node-a" })
        expect((yield* leases).some((lease) => lease.owner === "node-a")).toBe(true)
        proxy.freeze()
        const frozenAt = sim.now()
        // what node-a renewed last, before its network hung: it cannot move these any more
        yield* pause(200)
        const ofA = (yield* leases).filter((lease) => lease.owner === "node-a")
        yield* waitUntil(
          "node-b runs every channel",
          Effect.map(leases, (rows) => rows.every((row) => row.owner === "node-b")),
          { attempts: 600, everyMillis: 50 }
        )
        yield* settled(sim, client, channels, "every phone connected once, through node-b")
        // node-a's last renewal set these expiries; its sockets closed before them
        for (const lease of ofA) {
          const phone = phones[channels.indexOf(lease.channel_id)]!
          const old = sim
            .connectionHistory(phone)
            .filter((connection) => connection.loggedInAt < frozenAt && connection.closedAt !== undefined)
          expect(old.length, `${phone} had a connection through node-a`).toBeGreaterThan(0)
          for (const connection of old) {
            expect(connection.closedAt!, `${phone}'s socket closed before its lease expired`).toBeLessThan(
              lease.expires_at
            )
          }
        }
        expect(sim.overlaps(), "no two live connections of one number").toEqual([])
        proxy.thaw()
        yield* pause(2000)
        yield* settled(sim, client, channels, "after the network came back, still every phone once")
        expect(sim.overlaps()).toEqual([])
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "a SIGKILLed process's channels move once the database has closed its session, before its lease would have run out; never two sockets of one number",
    () =>
      Effect.gen(function* () {
        // a lease long enough that only the ended session can explain a takeover before it runs out
        const { sim, sql, b, clientA, channels, leases } = yield* twoGateways({ leaseTtlSeconds: 10 })
        const ofB = (yield* leases).filter((lease) => lease.owner === "node-b")
        expect(ofB.length).toBeGreaterThan(0)
        // node-b's lease as last seen: renewed since, it would run out later still
        const runsOut = Math.min(...ofB.map((lease) => lease.expires_at))
        yield* killed(b, "SIGKILL")
        yield* waitUntil(
          "node-a holds every channel",
          Effect.map(
            leases,
            (rows) => rows.length === channels.length && rows.every((row) => row.owner === "node-a")
          ),
          { attempts: 1200, everyMillis: 25 }
        )
        const [taken] = yield* sql<{
          at: number
        }>`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS at`.pipe(Effect.orDie)
        expect(taken!.at, "taken over before node-b's lease ran out").toBeLessThan(runsOut)
        yield* settled(sim, clientA, channels, "after node-b's SIGKILL, node-a runs every channel")
        expect(sim.overlaps(), "no two live connections of one number, ever").toEqual([])
      }).pipe(Effect.scoped),
    180_000
  )

  /**
   * node-a's connections to the database cut by `fault`: node-b takes every channel with never two
   * sockets of one number; once node-a reaches the database again, it takes its share back.
   */
  const cutOffAndBack = (fault: "drop" | "sever") =>
    Effect.gen(function* () {
      const { sim, proxy, client, channels, leases } = yield* twoGateways({ proxied: "node-a" })
      expect((yield* leases).some((lease) => lease.owner === "node-a")).toBe(true)
      proxy[fault]()
      yield* waitUntil(
        "node-b holds every channel",
        Effect.map(
          leases,
          (rows) => rows.length === channels.length && rows.every((row) => row.owner === "node-b")
        ),
        { attempts: 600, everyMillis: 25 }
      )
      yield* settled(sim, client, channels, "every phone connected once, through node-b")
      expect(sim.overlaps(), "node-a's sockets closed before node-b's opened").toEqual([])
      proxy.restore()
      yield* waitUntil(
        "node-a, back, takes its share again",
        Effect.map(leases, (rows) =>
          rows.some((row) => row.owner === "node-a" && row.expires_at > Date.now())
        ),
        { attempts: 1200, everyMillis: 50 }
      )
      yield* settled(sim, client, channels, "every phone connected once, shared again")
      expect(sim.overlaps()).toEqual([])
    }).pipe(Effect.scoped)

  // the server sees node-a's sessions end (its presence lock goes) and so does node-a
  it.live(
    "a process whose database connections all drop closes its sockets before the other may take its channels, and takes its share back once it reaches the database again",
    () => cutOffAndBack("drop"),
    180_000
  )

  // node-a's checks and renewals go unanswered (a check on such a socket fails seconds late); the
  // server sees its sessions end at once
  it.live(
    "a process whose presence session the server closed while its own end hears nothing closes its sockets before the other may take its channels",
    () => cutOffAndBack("sever"),
    180_000
  )
})
