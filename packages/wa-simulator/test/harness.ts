import { afterEach } from "vitest"
import { startSimulator, type Simulator, type SimulatorOptions } from "../src/index.ts"
import {
  connectBaileys,
  makeMemoryAuthState,
  simulatorLogger,
  statusCodeOf,
  type MemoryAuthState
} from "./baileys-client.ts"

/** Simulators and Baileys sockets a test starts, all closed after it. */
export const useHarness = () => {
  const cleanups: Array<() => Promise<void> | void> = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })

  const simulator = async (options: SimulatorOptions = {}): Promise<Simulator> => {
    const sim = await startSimulator({ logger: simulatorLogger, ...options })
    cleanups.push(() => sim.close())
    return sim
  }

  const baileys = (sim: Simulator, auth: MemoryAuthState, options?: Parameters<typeof connectBaileys>[2]) => {
    const client = connectBaileys(sim.url, auth, options)
    cleanups.push(() => client.socket.end(undefined))
    return client
  }

  /** A new companion shows its QR, the phone scans it, and the companion is told to restart. */
  const pair = async (sim: Simulator, phoneNumber: string): Promise<MemoryAuthState> => {
    const auth = makeMemoryAuthState()
    const client = baileys(sim, auth)
    const { qr } = await client.waitFor((update) => typeof update.qr === "string")
    await sim.scan(qr!, { phoneNumber })
    const closed = await client.waitFor((update) => update.connection === "close")
    if (statusCodeOf(closed) !== 515) throw new Error(`pairing ended with ${statusCodeOf(closed)}, not 515`)
    return auth
  }

  return { simulator, baileys, pair }
}
