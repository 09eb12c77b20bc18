import { Effect } from "effect"
import * as crypto from "node:crypto"
import { embeddedPortSpan, ephemeralFloor, testPortBlock, tryPort } from "../../src/db/embedded.ts"

/**
 * Ports for listeners under test. Each vitest worker (VITEST_POOL_ID: 1, 2, ...; blocks 1 to 11) and
 * any process outside vitest (block 0: the benchmarks) takes ports in turn from a block of its own
 * below the kernel's range for outgoing connections and below an embedded PostgreSQL's span, so that
 * neither a connection opened meanwhile, nor an embedded PostgreSQL starting, nor another worker can
 * take a port between its pick and its listener starting. A port some other process holds is skipped.
 * (Two vitest runs at once on one machine share blocks: only their random starts keep them apart.)
 */
const pool = process.env.VITEST_POOL_ID
const block = pool === undefined ? 0 : 1 + ((Number(pool) - 1) % 11)
const blockStart = Math.max(1024, ephemeralFloor() - embeddedPortSpan - testPortBlock * (block + 1))
let next = crypto.randomInt(testPortBlock)

export const testPort: Effect.Effect<number> = Effect.suspend(() => {
  const attempt = (left: number): Effect.Effect<number> =>
    left === 0
      ? Effect.die(new Error(`no free port in ${blockStart}–${blockStart + testPortBlock - 1}`))
      : Effect.suspend(() => {
          const port = blockStart + (next++ % testPortBlock)
          return Effect.catch(tryPort(port), () => attempt(left - 1))
        })
  return attempt(testPortBlock)
})
