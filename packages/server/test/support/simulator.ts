import { type Simulator, startSimulator } from "@whatisup/wa-simulator"
import { Effect } from "effect"
import { eventually } from "./eventually.ts"
import { testDatabase } from "./database.ts"
import { gatewayEnvironment, type RunningGateway, startGateway } from "./gateway.ts"
export { newCustomerKey } from "./gateway.ts"
import { request } from "./http.ts"

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

export const waitForStatus = (
  gateway: RunningGateway,
  key: string,
  id: string,
  status: string,
  attempts = 400
) =>
  eventually(
    Effect.map(channelOf(gateway, key, id), (c) => c.status === status),
    attempts
  )

/** A channel created, connected by QR through the API, and scanned by the simulator's phone. */
export const pairedChannel = (gateway: RunningGateway, sim: Simulator, key: string, phoneNumber: string) =>
  Effect.gen(function* () {
    const id = (yield* request(gateway.api, "POST", "/v1/channels", { key, body: {} })).body.id as string
    yield* request(gateway.api, "POST", `/v1/channels/${id}/connect`, { key, body: { method: "qr" } })
    let qr = ""
    yield* eventually(
      Effect.map(request(gateway.api, "GET", `/v1/channels/${id}/qr`, { key }), (reply) => {
        qr = reply.body?.qr ?? ""
        return reply.status === 200
      }),
      400
    )
    yield* Effect.promise(() => sim.scan(qr, { phoneNumber }))
    const connected = yield* waitForStatus(gateway, key, id, "connected")
    if (!connected) return yield* Effect.die(new Error(`channel ${id} did not connect`))
    return id
  })
