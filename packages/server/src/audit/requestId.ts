import { Context } from "effect"

/** The gateway's own id of the HTTP request (or admin call) being served, for logs and audit rows. */
export const CurrentRequestId = Context.Reference<string | null>("whatisup/CurrentRequestId", {
  defaultValue: () => null
})

/** The id the client gave its request (`X-Request-Id`): recorded beside ours, never in its place. */
export const CurrentClientRequestId = Context.Reference<string | null>("whatisup/CurrentClientRequestId", {
  defaultValue: () => null
})
