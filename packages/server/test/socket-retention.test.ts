import { expect, it } from "@effect/vitest"
import { MessageRetryManager } from "@whiskeysockets/baileys"
import { Effect } from "effect"
import * as v8 from "node:v8"
import { newCustomer } from "./support/admin.ts"
import { baileysGateway, pairedChannel } from "./support/simulator.ts"
import { waitUntil } from "./support/waits.ts"

/** Baileys sockets alive in this process (each has one retry manager), counted after a full GC. */
const liveSockets = () => v8.queryObjects(MessageRetryManager, { format: "count" }) as number

it.live(
  "a channel keeps one Baileys socket: the pairing connection, ended by WhatsApp's restart after the scan, is collected while the next one runs",
  () =>
    Effect.gen(function* () {
      const { sim, gateway } = yield* baileysGateway()
      const { client } = yield* newCustomer(gateway)
      const before = liveSockets()
      yield* pairedChannel(client, sim, "15550004321")
      // the supervisor once kept the ended connection's error, whose stack held the connection, its
      // socket with it, for as long as the next connection lasted
      yield* waitUntil(
        "only the connected socket is left",
        Effect.sync(() => liveSockets() - before === 1),
        { attempts: 100, everyMillis: 200 }
      )
      expect(liveSockets() - before).toBe(1)
    }).pipe(Effect.scoped),
  90_000
)
