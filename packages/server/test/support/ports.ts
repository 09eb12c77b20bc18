import { Effect } from "effect"
import * as crypto from "node:crypto"
import { ephemeralFloor, tryPort } from "../../src/db/embedded.ts"

/**
 * Ports for listeners under test. Each test worker (vitest's VITEST_POOL_ID; 0 outside vitest) takes
 * ports in turn from a block of its own below the kernel's range for outgoing connections, so neither
 * a connection opened meanwhile nor another worker picking at the same moment can take a port between
 * its pick and its listener starting. A port some other process already holds is skipped.
 */
const blockSize = 1024
const worker = Number(process.env.VITEST_POOL_ID ?? 0) % 15
const blockStart = ephemeralFloor() - blockSize * (worker + 1)
let next = crypto.randomInt(blockSize)

export const testPort: Effect.Effect<number> = Effect.suspend(() => {
  const attempt = (left: number): Effect.Effect<number> =>
    left === 0
      ? Effect.die(new Error(`no free port in ${blockStart}–${blockStart + blockSize - 1}`))
      : Effect.suspend(() => {
          const port = blockStart + (next++ % blockSize)
          return Effect.catch(tryPort(port), () => attempt(left - 1))
        })
  return attempt(blockSize)
})
