import { Effect, Logger } from "effect"

export interface LogEntry {
  readonly level: string
  readonly message: unknown
  /** The cause's rendering, stack traces included. */
  readonly cause: string | undefined
  readonly annotations: Record<string, unknown>
}

/**
 * What a gateway under test logs, kept instead of printed. A test that makes the gateway fail on
 * purpose takes the entries it caused and asserts them; whatever errors no test took are printed
 * when the gateway stops, so an unexpected one is still seen.
 */
export interface CapturedLogs {
  readonly logger: Logger.Logger<unknown, void>
  /** Removes and answers the entries at `level` whose message contains `message`. */
  readonly take: (level: string, message: string) => ReadonlyArray<LogEntry>
  /** Prints the errors nobody took, as the gateway would have. */
  readonly printUntaken: Effect.Effect<void>
}

const textOf = (message: unknown) => (Array.isArray(message) ? message.join(" ") : String(message))

export const captureLogs = (): CapturedLogs => {
  const entries: Array<LogEntry> = []
  return {
    logger: Logger.map(Logger.formatStructured, (entry) => {
      entries.push(entry)
    }),
    take: (level, message) => {
      const taken = entries.filter((e) => e.level === level && textOf(e.message).includes(message))
      for (const entry of taken) entries.splice(entries.indexOf(entry), 1)
      return taken
    },
    printUntaken: Effect.sync(() => {
      for (const entry of entries.splice(0)) {
        if (entry.level === "ERROR" || entry.level === "FATAL")
          process.stderr.write(`${JSON.stringify(entry)}\n`)
      }
    })
  }
}
