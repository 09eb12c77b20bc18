import { describe, expect, it } from "@effect/vitest"
import type { ChannelId } from "@whatisup/domain"
import { Context, Effect, Exit, Fiber, Scope } from "effect"
import type { PgClient } from "@effect/sql-pg"
import { Supervisor } from "../src/channels/supervisor.ts"
import { TransportEvent } from "../src/channels/transport.ts"
import { newCustomer } from "./support/admin.ts"
import { type ApiClient, waitForStatus } from "./support/api.ts"
import { lockTable, sqlFor, testDatabase } from "./support/database.ts"
import { gatewayEnvironment, type RunningGateway, startGateway } from "./support/gateway.ts"
import { staysTrue, waitUntil } from "./support/waits.ts"

/** A channel paired and connected on a gateway of its own (in-memory WhatsApp, real clock). */
const connectedChannels = (gateway: RunningGateway, client: ApiClient, count: number) =>
  Effect.forEach(
    Array.from({ length: count }, (_, i) => i),
    (i) =>
      Effect.gen(function* () {
        const { id } = yield* client.channels.create({ headers: {}, payload: {} })
        yield* client.channels.connect({ params: { id }, payload: { method: "qr" } })
        yield* waitUntil(
          `channel ${i}'s connection is open`,
          Effect.sync(() => gateway.whatsapp.isOpen(id))
        )
        yield* gateway.whatsapp.pair(id, `+1555444${String(i).padStart(4, "0")}`)
        yield* waitForStatus(client, id, "connected")
        return id
      })
  )

const aGateway = (extra: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const database = yield* testDatabase
    const env = yield* gatewayEnvironment(database.url, extra)
    const scope = yield* Scope.make()
    const gateway = yield* startGateway(env).pipe(Scope.provide(scope))
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const { client } = yield* newCustomer(gateway, { plan: { max_channels: 5 } })
    const sql = yield* sqlFor(database.url)
    return { gateway, client, sql, scope }
  })

const disconnectReasons = (sql: PgClient.PgClient, channel: ChannelId) =>
  Effect.map(
    sql<{ reason: string }>`
      SELECT data ->> 'reason' AS reason FROM events
      WHERE channel_id = ${channel} AND type = 'channel.disconnected' ORDER BY id`,
    (rows) => rows.map((row) => row.reason)
  ).pipe(Effect.orDie)

describe("a stopping actor closes its socket before its database bookkeeping (issue 8, item 2)", () => {
  it.live(
    "item 2: a restart closes the socket while recording the disconnect is stuck (events table locked)",
    () =>
      Effect.gen(function* () {
        const { gateway, client, sql } = yield* aGateway()
        const [channel] = yield* connectedChannels(gateway, client, 1)
        const { whatsapp } = gateway
        const events = yield* lockTable(sql, "events", "SHARE")

        yield* client.channels.restart({ params: { id: channel! } })
        yield* waitUntil(
          "the socket is closed, with the events table still locked",
          Effect.sync(() => whatsapp.closes(channel!) === 1)
        )
        yield* waitUntil(
          "the disconnect is being recorded: it waits on the lock",
          Effect.map(events.waiting, (n) => n > 0)
        )
        expect(yield* disconnectReasons(sql, channel!)).toEqual([])
        expect(whatsapp.connects(channel!)).toBe(1)

        yield* events.release
        yield* waitUntil(
          "once unlocked, the disconnect is recorded and the channel connects again",
          Effect.map(
            disconnectReasons(sql, channel!),
            (reasons) => reasons.length === 1 && reasons[0]!.startsWith("restart_requested")
          )
        )
        yield* waitUntil(
          "a new connection is open",
          Effect.sync(() => whatsapp.connects(channel!) === 2 && whatsapp.isOpen(channel!))
        )
        yield* waitForStatus(client, channel!, "connected")
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "item 2: a delete unlinks and closes the socket while handing the lease back is stuck (leases table locked)",
    () =>
      Effect.gen(function* () {
        // a long lease: the statement handing it back waits on the lock rather than timing out
        const { gateway, client, sql } = yield* aGateway({ WHATISUP_LEASE_TTL: "60s" })
        const [channel] = yield* connectedChannels(gateway, client, 1)
        const { whatsapp } = gateway
        const leases = yield* lockTable(sql, "channel_leases", "EXCLUSIVE")

        yield* client.channels.delete({ params: { id: channel! } })
        yield* waitUntil(
          "the device is unlinked and the socket closed, with the leases table still locked",
          Effect.sync(() => whatsapp.logouts(channel!) === 1 && whatsapp.closes(channel!) === 1)
        )
        yield* waitUntil(
          "the lease is being handed back: it waits on the lock",
          Effect.map(leases.waiting, (n) => n > 0)
        )
        const owner = () =>
          Effect.map(
            sql<{ owner: string | null }>`SELECT owner FROM channel_leases WHERE channel_id = ${channel!}`,
            (rows) => rows[0]?.owner ?? null
          ).pipe(Effect.orDie)
        expect(yield* owner()).toBe(gateway.config.nodeId)

        yield* leases.release
        yield* waitUntil(
          "once unlocked, the lease is handed back",
          Effect.map(owner(), (now) => now === null)
        )
        expect(whatsapp.connects(channel!)).toBe(1)
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "item 2: a gateway stop closes every socket while recording the disconnects is stuck (events table locked)",
    () =>
      Effect.gen(function* () {
        const { gateway, client, sql, scope } = yield* aGateway()
        const channels = yield* connectedChannels(gateway, client, 2)
        const { whatsapp } = gateway
        const events = yield* lockTable(sql, "events", "SHARE")

        const stopping = yield* Effect.forkScoped(Scope.close(scope, Exit.void))
        yield* waitUntil(
          "every socket is closed, with the events table still locked",
          Effect.sync(() => channels.every((id) => whatsapp.closes(id) === 1))
        )
        yield* waitUntil(
          "the disconnects are being recorded: they wait on the lock",
          Effect.map(events.waiting, (n) => n > 0)
        )
        expect(stopping.pollUnsafe()).toBeUndefined()

        yield* events.release
        yield* Fiber.join(stopping)
        for (const id of channels) {
          const reasons = yield* disconnectReasons(sql, id)
          expect(reasons).toHaveLength(1)
          expect(reasons[0]).toMatch(/^gateway_stopping/)
        }
      }).pipe(Effect.scoped),
    60_000
  )
})

describe("one connection of a channel at a time in one process (issue 8, item 3)", () => {
  /** Sockets slow to close from now on, until the test lets them go (or ends, failed or not). */
  const slowCloses = (gateway: RunningGateway) =>
    Effect.acquireRelease(gateway.whatsapp.holdCloses(true), () => gateway.whatsapp.holdCloses(false))

  /** While the old socket takes its time to close, no second connection of the channel opens. */
  const noSecondConnection = (gateway: RunningGateway, channel: ChannelId) =>
    Effect.gen(function* () {
      const { whatsapp } = gateway
      yield* waitUntil(
        "the old connection is closing",
        Effect.sync(() => whatsapp.isClosing(channel))
      )
      yield* staysTrue(
        "no second connection while the old one is still closing",
        Effect.sync(() => whatsapp.connects(channel) === 1 && whatsapp.mostOpenAtOnce(channel) === 1),
        { forMillis: 750 }
      )
      yield* whatsapp.holdCloses(false)
      yield* waitUntil(
        "once the old socket closed, the new connection opens",
        Effect.sync(() => whatsapp.connects(channel) === 2 && whatsapp.isOpen(channel)),
        { attempts: 400 }
      )
      expect(whatsapp.closes(channel)).toBe(1)
      expect(whatsapp.mostOpenAtOnce(channel)).toBe(1)
    })

  it.live(
    "item 3: a restart through the API, with a socket slow to close, opens the new connection only after the old one closed",
    () =>
      Effect.gen(function* () {
        const { gateway, client } = yield* aGateway()
        const [channel] = yield* connectedChannels(gateway, client, 1)
        yield* slowCloses(gateway)
        yield* client.channels.restart({ params: { id: channel! } })
        yield* noSecondConnection(gateway, channel!)
        yield* waitForStatus(client, channel!, "connected")
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "item 3: a reconnect (515 after a login), with a socket slow to close, opens the new connection only after the old one closed",
    () =>
      Effect.gen(function* () {
        const { gateway, client } = yield* aGateway()
        const [channel] = yield* connectedChannels(gateway, client, 1)
        yield* slowCloses(gateway)
        yield* gateway.whatsapp.emit(
          channel!,
          TransportEvent.Close({ code: 515, reason: "restart required" })
        )
        yield* noSecondConnection(gateway, channel!)
        yield* waitForStatus(client, channel!, "connected")
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "item 3: a channel lost and taken back at once, with a socket slow to close, opens the new connection only after the old one closed",
    () =>
      Effect.gen(function* () {
        const { gateway, client, sql } = yield* aGateway()
        const [channel] = yield* connectedChannels(gateway, client, 1)
        yield* slowCloses(gateway)
        // taken by a node that is gone at once: this process drops it, then may claim it again
        yield* sql`
          UPDATE channel_leases SET owner = 'departed-node', generation = generation + 1
          WHERE channel_id = ${channel!}`
        yield* Effect.forkScoped(gateway.logged(Context.get(gateway.services, Supervisor).reconcile))
        yield* noSecondConnection(gateway, channel!)
        const lease = yield* sql<{
          owner: string
        }>`SELECT owner FROM channel_leases WHERE channel_id = ${channel!}`
        expect(lease[0]?.owner).toBe(gateway.config.nodeId)
      }).pipe(Effect.scoped),
    60_000
  )
})
