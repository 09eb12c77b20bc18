import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { ChannelMessaging } from "../channels/messaging.ts"
import { GatewayConfigService } from "../config/config.ts"
import { EventLog } from "../events/eventLog.ts"
import { drainOutbox } from "./drain.ts"
import { Inbox } from "./inbox.ts"
import { MediaFetcher } from "./mediaFetch.ts"
import { failQueued, Outbox } from "./outbox.ts"
import { OutboxSignal } from "./outboxSignal.ts"
import { makeReportRounds } from "./reportRounds.ts"

/**
 * Runs `effect` again, a second later, each time it dies: a moment when the database fails must not
 * stop the outbox's work for as long as the connection lasts.
 */
const throughDefects = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.catchDefect(effect, (defect) =>
    Effect.logError(`${what} failed; trying again`, defect).pipe(
      Effect.andThen(Effect.sleep("1 second")),
      Effect.andThen(Effect.suspend(() => throughDefects(what, effect)))
    )
  )

/** The channels' port to messages: the outbox's drain and reports, the inbox, and what a channel that goes leaves behind. */
export const layerChannelMessaging = Layer.effect(
  ChannelMessaging,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const events = yield* EventLog
    const outbox = yield* Outbox
    const inbox = yield* Inbox
    const context = yield* Effect.context<Outbox | OutboxSignal | MediaFetcher | GatewayConfigService>()
    const report = yield* makeReportRounds(outbox.reportAll)
    return ChannelMessaging.of({
      drain: (fence, connection, holdsLease) =>
        throughDefects(
          "the outbox drain",
          Effect.scoped(drainOutbox(fence, connection, holdsLease, outbox.pace(fence.channelId)))
        ).pipe(
          Effect.catchTag("LeaseLost", () => Effect.void),
          Effect.provideContext(context)
        ),
      // every channel's in rounds; a round that died is applied again: acks and receipts only ever
      // move a message forward
      report,
      storeInbound: inbox.store,
      sentContent: outbox.sentContent,
      // in the caller's transaction: the statements run on the connection it holds
      channelGone: (channelId, reason) => failQueued(sql, events, channelId, reason)
    })
  })
)
