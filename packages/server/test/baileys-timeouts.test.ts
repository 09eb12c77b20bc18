import { describe, expect, it } from "@effect/vitest"
import { DisconnectReason, promiseTimeout } from "@whiskeysockets/baileys"

/**
 * Baileys' `promiseTimeout` (patched) wraps every frame the socket sends and every query it waits
 * on: it formats the caller's stack only when the time runs out, and makes no 'Cancelled' error for
 * a promise that settled in time. What it answers is Baileys' own.
 */

const timers = () => process.getActiveResourcesInfo().filter((resource) => resource === "Timeout").length

/** How many stacks `effect` formats: V8 asks `Error.prepareStackTrace` for each. */
const stacksFormattedBy = async (effect: () => Promise<unknown>) => {
  const original = Error.prepareStackTrace
  let formatted = 0
  Error.prepareStackTrace = (error, frames) => {
    formatted += 1
    return original === undefined
      ? `${String(error)}\n    at ${frames.join("\n    at ")}`
      : original(error, frames)
  }
  try {
    await effect()
  } finally {
    Error.prepareStackTrace = original
  }
  return formatted
}

const callerOfTheTimeout = () => promiseTimeout<string>(20, () => {})

describe("Baileys' promiseTimeout (patched)", () => {
  it("answers what the promise settles with, formats no stack, and leaves no timer behind", async () => {
    const before = timers()
    let answers: ReadonlyArray<number> = []
    const formatted = await stacksFormattedBy(async () => {
      answers = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          promiseTimeout<number>(60_000, (resolve) => {
            setImmediate(() => resolve(i))
          })
        )
      )
    })
    expect(answers).toEqual(Array.from({ length: 50 }, (_, i) => i))
    // Baileys' own formatted two for each
    expect(formatted).toBe(0)
    await expect(
      promiseTimeout(60_000, (_, reject) => {
        reject(new Error("refused"))
      })
    ).rejects.toThrow("refused")
    // Baileys' own made a timer that ended with the promise too; none of the 51 is left
    expect(timers()).toBe(before)
  })

  it("fails a promise that does not settle in time with Baileys' 'Timed Out' (408), naming where it was made", async () => {
    const failure = await callerOfTheTimeout().then(
      () => undefined,
      (error: unknown) => error
    )
    expect(failure).toMatchObject({
      message: "Timed Out",
      isBoom: true,
      output: { statusCode: DisconnectReason.timedOut }
    })
    expect((failure as { data: { stack: string } }).data.stack).toContain("callerOfTheTimeout")
  })

  it("with no time limit, is the promise itself", async () => {
    expect(await promiseTimeout<string>(undefined, (resolve) => resolve("done"))).toBe("done")
  })
})
