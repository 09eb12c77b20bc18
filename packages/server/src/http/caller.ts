import { Caller, Forbidden } from "@whatisup/domain"
import { Effect } from "effect"

/** The audit actor for what an API key does. */
export const actorOf = (caller: Caller["Service"]) => ({ type: "api_key" as const, id: caller.keyId })

/** A key bound to one channel acts on that channel alone: managing the account is refused. */
export const unboundCaller = (action: string) =>
  Effect.gen(function* () {
    const caller = yield* Caller
    if (caller.channelId !== null) {
      return yield* new Forbidden({ detail: `A key bound to a channel cannot ${action}` })
    }
    return caller
  })
