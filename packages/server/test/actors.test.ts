import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { TransportEvent } from "../src/channels/transport.ts"
import { sqlFor, testDatabase } from "./support/database.ts"
import { waitUntil } from "./support/waits.ts"
import { newCustomer } from "./support/admin.ts"
import { connectAll, createChannels, waitForStatus } from "./support/api.ts"
import { gatewayEnvironment, type RunningGateway, startGateway } from "./support/gateway.ts"

/** A customer whose plan allows this many channels, and the API client of its key. */
const customerWith = (gateway: RunningGateway, channels: number) =>
  Effect.gen(function* () {
    const { client } = yield* newCustomer(gateway, {
      name: "Many Phones",
      plan: { max_channels: channels, api_requests_per_second: 100_000 }
    })
    return client
  })

describe("channel actors", () => {
  it.live(
    "a defect inside one actor leaves 100 others running, and that actor is restarted",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const gateway = yield* startGateway(yield* gatewayEnvironment(database.url))
        const { whatsapp } = gateway
        const client = yield* customerWith(gateway, 101)
        const ids = yield* createChannels(client, 101)
        for (const accepted of yield* connectAll(client, ids)) expect(accepted.status).toBe("pairing")
        yield* waitUntil(
          "all 101 connections are open",
          Effect.sync(() => ids.every((id) => whatsapp.isOpen(id))),
          { attempts: 400 }
        )
        yield* Effect.forEach(ids, (id, i) => whatsapp.pair(id, `+1555000${String(i).padStart(4, "0")}`), {
          discard: true
        })
        const sql = yield* sqlFor(database.url)
        const connected = () =>
          Effect.map(
            sql<{ n: number }>`SELECT count(*)::int AS n FROM channels WHERE status = 'connected'`,
            (rows) => rows[0]!.n
          ).pipe(Effect.orDie)
        yield* waitUntil(
          "all 101 channels are connected",
          Effect.map(connected(), (n) => n === 101),
          { attempts: 400 }
        )

        const victim = ids[50]!
        const connectsBefore = whatsapp.connects(victim)
        // a QR with an impossible expiry makes the actor throw: a bug, not a WhatsApp event
        yield* whatsapp.emit(victim, TransportEvent.Qr({ qr: "x", expiresAt: new Date(Number.NaN) }))
        yield* waitUntil(
          "the failed actor is restarted",
          Effect.sync(() => whatsapp.connects(victim) > connectsBefore),
          { attempts: 200, everyMillis: 50 }
        )
        yield* waitUntil(
          "the restarted actor's connection is open",
          Effect.sync(() => whatsapp.isOpen(victim)),
          {
            attempts: 200,
            everyMillis: 50
          }
        )

        const metrics = yield* Effect.promise(() =>
          fetch(`${gateway.admin}/metrics`, {
            headers: { authorization: `Bearer ${gateway.adminToken}` }
          }).then((r) => r.text())
        )
        expect(metrics).toMatch(/whatisup_channel_actor_restarts_total\{reason="defect"\} 1/)
        const [failure, ...more] = gateway.logs.take("ERROR", "channel actor failed")
        expect(more).toEqual([])
        expect(failure!.cause).toContain("Invalid time value")
        expect(failure!.annotations.channel_id).toBe(victim)
        const others = ids.filter((id) => id !== victim)
        expect(others.every((id) => whatsapp.isOpen(id) && whatsapp.connects(id) === 1)).toBe(true)
        expect(yield* connected()).toBeGreaterThanOrEqual(100)
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "deleting a connected channel interrupts its actor, unlinks and closes the socket, and audits it",
    () =>
      Effect.gen(function* () {
        const database = yield* testDatabase
        const gateway = yield* startGateway(yield* gatewayEnvironment(database.url))
        const { whatsapp } = gateway
        const client = yield* customerWith(gateway, 5)
        const [id] = yield* createChannels(client, 1)
        for (const accepted of yield* connectAll(client, [id!])) expect(accepted.status).toBe("pairing")
        yield* waitUntil(
          "the channel's connection is open",
          Effect.sync(() => whatsapp.isOpen(id!))
        )
        yield* whatsapp.pair(id!, "+15559990000")
        yield* waitForStatus(client, id!, "connected")
        const deleted = yield* client.channels.delete({ params: { id: id! } })
        expect(deleted.status).toBe("deleted")
        yield* waitUntil(
          "deleting closes the connection",
          Effect.sync(() => !whatsapp.isOpen(id!))
        )
        expect(whatsapp.closes(id!)).toBe(1)
        expect(whatsapp.logouts(id!)).toBe(1)
        const sql = yield* sqlFor(database.url)
        const rows = yield* sql<{ status: string; desired: string; leases: number; action: string }>`
          SELECT c.status, c.desired,
            (SELECT count(*)::int FROM held_channel_leases WHERE channel_id = c.id AND expires_at > now()) AS leases,
            (SELECT action FROM audit_events WHERE resource_id = c.id ORDER BY id DESC LIMIT 1) AS action
          FROM channels c WHERE c.id = ${id!}`
        expect(rows[0]).toEqual({
          status: "deleted",
          desired: "stopped",
          leases: 0,
          action: "channel.deleted"
        })
      }).pipe(Effect.scoped),
    60_000
  )
})
