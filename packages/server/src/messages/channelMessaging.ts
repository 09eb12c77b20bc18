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

/** The channels' port to messages: the outbox's drain and reports, the inbox, and what a channel that goes leaves behind. */
export const layerChannelMessaging = Layer.effect(
  ChannelMessaging,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const events = yield* EventLog
    const outbox = yield* Outbox
    const inbox = yield* Inbox
    const context = yield* Effect.context<Outbox | OutboxSignal | MediaFetcher | GatewayConfigService>()
    return ChannelMessaging.of({
      drain: (fence, connection, holdsLease) =>
        drainOutbox(fence, connection, holdsLease, outbox.pace(fence.channelId)).pipe(
          Effect.catchTag("LeaseLost", () => Effect.void),
          Effect.catchCause((cause) => Effect.logError("the outbox drain stopped", cause)),
          Effect.provideContext(context)
        ),
      report: outbox.report,
      storeInbound: inbox.store,
      sentContent: outbox.sentContent,
      // in the caller's transaction: the statements run on the connection it holds
      channelGone: (channelId, reason) => failQueued(sql, events, channelId, reason)
    })
  })
)
