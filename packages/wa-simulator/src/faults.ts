import type { Connection } from "./connection.ts"

/**
 * How the server can end a session, as Baileys sees it: a stream error carries its code
 * (515 restart, 401 logged out, 440 replaced, 503 unavailable...), a failure answers a login
 * (405 outdated client, 403 banned, 401 unknown device), a drop is a silent network cut (428 in Baileys).
 */
export type Fault =
  | { readonly kind: "stream-error"; readonly code: number }
  | { readonly kind: "failure"; readonly reason: number }
  | { readonly kind: "drop" }

export const applyFault = (connection: Connection, fault: Fault): void => {
  switch (fault.kind) {
    case "stream-error":
      return connection.streamError(fault.code)
    case "failure":
      return connection.failure(fault.reason)
    case "drop":
      return connection.drop()
  }
}
