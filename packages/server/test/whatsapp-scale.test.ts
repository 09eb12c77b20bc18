import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { sqlFor } from "./support/database.ts"
import { waitUntil } from "./support/waits.ts"
import { newCustomer } from "./support/admin.ts"
import { baileysGateway, pairedChannel } from "./support/simulator.ts"

const phone = (n: number) => `4477009${String(n).padStart(5, "0")}`

describe("many channels with real Baileys", () => {
  it.live(
    "50 channels paired in one gateway process all reconnect after the simulator drops every connection at once",
    () =>
      Effect.gen(function* () {
        const { sim, database, gateway } = yield* baileysGateway()
        const { client } = yield* newCustomer(gateway, { plan: { max_channels: 50 } })
        const ids = yield* Effect.forEach(
          Array.from({ length: 50 }, (_, i) => i),
          (i) => pairedChannel(client, sim, phone(i)),
          { concurrency: 10 }
        )
        const sql = yield* sqlFor(database.url)
        const connected = Effect.map(
          sql<{ n: number }>`SELECT count(*)::int AS n FROM channels WHERE status = 'connected'`,
          (rows) => rows[0]!.n
        ).pipe(Effect.orDie)
        expect(yield* connected).toBe(50)

        let dropped = 0
        for (let i = 0; i < 50; i++) dropped += sim.inject(phone(i), { kind: "drop" })
        expect(dropped).toBe(50)
        yield* waitUntil(
          "the dropped channels leave connected",
          Effect.map(connected, (n) => n < 50)
        )
        yield* waitUntil(
          "all 50 channels are connected again",
          Effect.map(connected, (n) => n === 50),
          { attempts: 1200, everyMillis: 50 }
        )
        for (let i = 0; i < 50; i++) expect(sim.connectionsOf(phone(i)), phone(i)).toHaveLength(1)
        const disconnects = yield* sql<{ n: number }>`
          SELECT count(*)::int AS n FROM events WHERE type = 'channel.disconnected' AND (data ->> 'code')::int = 428`
        expect(disconnects[0]!.n).toBe(50)
        expect(ids).toHaveLength(50)
      }).pipe(Effect.scoped),
    300_000
  )
})
