import { type Simulator, startSimulator } from "@whatisup/wa-simulator"
import { Effect } from "effect"
import { testDatabase } from "./database.ts"
import { gatewayEnvironment, type RunningGateway, startGateway } from "./gateway.ts"
import { request } from "./http.ts"
import { waitFor } from "./waits.ts"

/** The local WhatsApp Web server real Baileys talks to, for the scope's lifetime. */
export const simulator = Effect.acquireRelease(
  Effect.promise(() => startSimulator()),
  (sim) => Effect.promise(() => sim.close())
)

/** The simulator, a database, and a gateway on them that talks WhatsApp through real Baileys. */
export const baileysGateway = (extra: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const sim = yield* simulator
    const database = yield* testDatabase
    const gateway = yield* startGateway(
      yield* gatewayEnvironment(database.url, { WHATISUP_WA_WS_URL: sim.url, ...extra }),
      { whatsapp: "baileys" }
    )
    return { sim, database, gateway }
  })

export const channelOf = (gateway: RunningGateway, key: string, id: string) =>
  Effect.map(request(gateway.api, "GET", `/v1/channels/${id}`, { key }), (reply) => reply.body)

/** Waits until the channel has this status, and answers the channel as it then was. */
export const waitForStatus = (
  gateway: RunningGateway,
  key: string,
  id: string,
  status: string,
  attempts = 400
) =>
  waitFor(`channel ${id} is ${status}`, channelOf(gateway, key, id), (c) => c?.status === status, {
    attempts
  })

/** A channel created, connected by QR through the API, and scanned by the simulator's phone. */
export const pairedChannel = (gateway: RunningGateway, sim: Simulator, key: string, phoneNumber: string) =>
  Effect.gen(function* () {
    const id = (yield* request(gateway.api, "POST", "/v1/channels", { key, body: {} })).body.id as string
    yield* request(gateway.api, "POST", `/v1/channels/${id}/connect`, { key, body: { method: "qr" } })
    const qr = yield* waitFor(
      `channel ${id} shows a QR`,
      request(gateway.api, "GET", `/v1/channels/${id}/qr`, { key }),
      (reply) => reply.status === 200,
      { attempts: 400 }
    )
    yield* Effect.promise(() => sim.scan(qr.body.qr, { phoneNumber }))
    yield* waitForStatus(gateway, key, id, "connected")
    return id
  })
