import { Context } from "effect"

/** The id of the HTTP request (or admin call) being served, for logs and audit rows. */
export const CurrentRequestId = Context.Reference<string | null>("whatisup/CurrentRequestId", {
  defaultValue: () => null
})
