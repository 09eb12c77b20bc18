import {
  type Delivery,
  type DeliveryResult,
  type Simulator,
  type SimulatorLogger,
  startSimulator
} from "@whatisup/wa-simulator"
import { Effect } from "effect"
import { getCACertificates, setDefaultCACertificates } from "node:tls"
import { type ApiClient, waitForQr, waitForStatus } from "./api.ts"
import { testDatabase } from "./database.ts"
import { gatewayEnvironment, startGateway } from "./gateway.ts"

/**
 * For a flaky failure's post-mortem: `WHATISUP_TEST_SIMULATOR_WARNINGS=1` prints the simulator's
 * warnings (a message its phone could not decrypt, a retry receipt it could not answer) on stderr;
 * the simulator is otherwise silent in tests.
 */
const simulatorLogger: SimulatorLogger | undefined =
  process.env.WHATISUP_TEST_SIMULATOR_WARNINGS === "1"
    ? {
        debug: () => {},
        warn: (fields, message) =>
          console.error(`simulator warning: ${message ?? ""} ${JSON.stringify(fields)}`),
        isLevelEnabled: (level) => level === "warn"
      }
    : undefined

/** The local WhatsApp Web server real Baileys talks to, for the scope's lifetime. */
export const simulator = Effect.acquireRelease(
  Effect.promise(() => startSimulator(simulatorLogger === undefined ? {} : { logger: simulatorLogger })),
  (sim) => Effect.promise(() => sim.close())
)

/** The simulator, a database, and a gateway on them that talks WhatsApp through real Baileys. */
export const baileysGateway = (extra: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const sim = yield* simulator
    const database = yield* testDatabase
    const gateway = yield* startGateway(
      yield* gatewayEnvironment(database.url, {
        WHATISUP_WA_WS_URL: sim.url,
        WHATISUP_WA_MEDIA_HOST: sim.mediaHost,
        ...extra
      }),
      { whatsapp: "baileys" }
    )
    return { sim, database, gateway }
  })

/** A channel created, connected by QR through the API, and scanned by the simulator's phone. */
export const pairedChannel = (client: ApiClient, sim: Simulator, phoneNumber: string) =>
  Effect.gen(function* () {
    const { id } = yield* client.channels.create({ headers: {}, payload: {} })
    yield* client.channels.connect({ params: { id }, payload: { method: "qr" } })
    const { qr } = yield* waitForQr(client, id, { attempts: 400 })
    yield* Effect.promise(() => sim.scan(qr, { phoneNumber }))
    // pairing and the login after it take real Baileys a few seconds; more on a loaded machine
    yield* waitForStatus(client, id, "connected", { attempts: 1200 })
    return id
  })

/**
 * Trusts the simulator's media host for the scope: Baileys uploads with node:https and downloads
 * with the global fetch, and both trust the default CAs.
 */
export const trustMediaHost = (sim: Simulator) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const trusted = getCACertificates("default")
      setDefaultCACertificates([...trusted, sim.mediaCertificate])
      return trusted
    }),
    (trusted) => Effect.sync(() => setDefaultCACertificates(trusted))
  )

/**
 * The simulated phone of `delivery.from` sends a message to every linked device of `phoneNumber`
 * (E.164 as the gateway writes it, or digits): Signal-encrypted unless `encryption: "plaintext"`;
 * succeeds once it went out, or was held for devices offline (see `Simulator.deliver`).
 */
export const deliverTo = (
  sim: Simulator,
  phoneNumber: string,
  delivery: Delivery
): Effect.Effect<DeliveryResult> =>
  Effect.promise(() =>
    sim.deliver(phoneNumber.replace(/^\+/, ""), { ...delivery, from: delivery.from.replace(/^\+/, "") })
  )
