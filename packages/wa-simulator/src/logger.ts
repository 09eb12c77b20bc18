/** The part of a pino-compatible logger the simulator writes to. */
export interface SimulatorLogger {
  readonly debug: (obj: object, msg?: string) => void
  readonly warn: (obj: object, msg?: string) => void
  /** As pino's: lets the simulator skip rendering stanzas nobody reads. */
  readonly isLevelEnabled?: (level: string) => boolean
}

export const silentLogger: SimulatorLogger = {
  debug: () => {},
  warn: () => {},
  isLevelEnabled: () => false
}
