import { type ChannelId, type MessageStatus, storableText } from "@whatisup/domain"
import { Context, Duration, Effect, Layer, Metric, Schedule, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { GatewayConfigService } from "../config/config.ts"
import { type Fence, LeaseLost, Leases } from "../channels/leases.ts"
import type { StatusReport } from "../channels/messaging.ts"
import { transaction } from "../db/transaction.ts"
import { EventLog } from "../events/eventLog.ts"
import {
  advances,
  applyTransitions,
  type Transition,
  type TransitionTarget,
  transitionColumns,
  transitionColumnsOf
} from "./transitions.ts"

const outboxDepth = Metric.gauge("messages_outbox", {
  description:
    "Outbound messages not yet sent, across every node: waiting (never tried) and sending (claimed by a connection, awaiting WhatsApp's ack)"
})
const reportsCounted = Metric.counter("message_reports_total", {
  description:
    "Server acks and recipients' receipts, by kind, and outcome: applied (it moved its message to the status it reports) or ignored (late, repeated, or for no message of the channel)"
})

/** An outbound message a channel's actor claimed to send. */
export interface OutboxItem {
  readonly id: string
  readonly whatsappId: string
  /** The recipient, E.164. */
  readonly chat: string
  readonly type: string
  readonly content: Record<string, unknown>
  /** The WhatsApp message stored at its first preparation: a resend sends exactly this. */
  readonly prepared: Uint8Array | null
  /** An earlier claim may have sent it: it goes again with the same id and content. */
  readonly possiblySent: boolean
  readonly createdAt: Date
  /** The message it quotes or reacts to, as WhatsApp knows it. */
  readonly reference: {
    readonly whatsappId: string
    readonly fromMe: boolean
    readonly chat: string
    readonly content: Uint8Array | null
  } | null
}

/** An inbound message whose read receipt was asked for. */
export interface ReadReceipt {
  readonly id: string
  readonly whatsappId: string
  readonly chat: string
}

/**
 * The outbox of every channel: the outbound message rows. Claims and status writes are fenced by the
 * channel's lease (a claim checks it in its own statement); reading a sent message's content for a
 * retry receipt is not.
 */
export class Outbox extends Context.Service<
  Outbox,
  {
    /**
     * Claims the channel's next queued messages in creation order for one connection (`token`): those
     * this connection claimed already are skipped; those an earlier claim took count as possibly sent.
     */
    readonly claim: (
      fence: Fence,
      token: number,
      limit: number
    ) => Effect.Effect<ReadonlyArray<OutboxItem>, LeaseLost>
    /**
     * Stores messages' WhatsApp content at their first preparation, in one statement; answers each
     * one's content stored first, by id.
     */
    readonly prepared: (
      fence: Fence,
      contents: ReadonlyArray<{ readonly id: string; readonly content: Uint8Array }>
    ) => Effect.Effect<ReadonlyMap<string, Uint8Array>, LeaseLost>
    /**
     * Gives claims back: `possiblySent` ones (which may have reached WhatsApp) stay marked so, the
     * `untried` ones are unclaimed; the next claim takes them again in order.
     */
    readonly release: (
      fence: Fence,
      possiblySent: ReadonlyArray<string>,
      untried: ReadonlyArray<string>
    ) => Effect.Effect<void>
    /** Fails messages that cannot be sent (media refused, too old). */
    readonly fail: (fence: Fence, failures: ReadonlyArray<Transition>) => Effect.Effect<void, LeaseLost>
    /**
     * Applies what connections reported, several channels' batches in one transaction; says what
     * became of each batch. A channel whose row is locked elsewhere is not waited for (unless `wait`,
     * for up to a second): its batch is held back, for the caller to hand in again.
     */
    readonly reportAll: (
      batches: ReadonlyArray<ReportBatch>,
      wait?: boolean
    ) => Effect.Effect<ReadonlyArray<ReportOutcome>>
    /** A sent message's stored WhatsApp content, for the recipient's retry receipts; not fenced. */
    readonly sentContent: (channelId: ChannelId, whatsappId: string) => Effect.Effect<Uint8Array | undefined>
    /** Read receipts asked for and not yet sent. */
    readonly readReceipts: (fence: Fence, limit: number) => Effect.Effect<ReadonlyArray<ReadReceipt>>
    readonly readReceiptsSent: (fence: Fence, ids: ReadonlyArray<string>) => Effect.Effect<void, LeaseLost>
    /** The messages a minute the channel's plan allows it to send. */
    readonly pace: (channelId: ChannelId) => Effect.Effect<number>
  }
>()("whatisup/Outbox") {}

/** One channel's acks and receipts, in the order they came, under the lease of the connection they came on. */
export interface ReportBatch {
  readonly fence: Fence
  readonly reports: ReadonlyArray<StatusReport>
}

/**
 * What became of a batch: applied (each report that moves its message on, the others ignored),
 * lease_lost (refused: the lease is someone else's), or held_back (its channel's row was locked
 * elsewhere; nothing done).
 */
export type ReportOutcome = "applied" | "lease_lost" | "held_back"

const HeldRow = Schema.Struct({
  locked: Schema.Array(Schema.String),
  leased: Schema.Array(Schema.Tuple([Schema.String, Schema.Number]))
})

const statusOfReport = (report: StatusReport): MessageStatus =>
  report._tag === "ServerAck" ? (report.error === null ? "sent" : "failed") : report.receipt

/**
 * In the caller's transaction: every queued message of the channel fails, since the channel was
 * deleted or logged out; posted as message.failed.
 */
export const failQueued = (
  sql: SqlClient.SqlClient,
  events: EventLog["Service"],
  channelId: ChannelId,
  reason: "channel_deleted" | "channel_logged_out"
) =>
  Effect.gen(function* () {
    const targets = yield* sql<TransitionTarget>`
      SELECT ${sql.unsafe(transitionColumns)} FROM messages
      WHERE channel_id = ${channelId} AND status = 'queued' ORDER BY id FOR UPDATE`
    yield* failAll(sql, events, targets, reason, channelGoneDetail[reason])
  }).pipe(Effect.orDie)

/** Why a message expired, for a person. */
export const expiredDetail = (maxAge: Duration.Duration) =>
  `The message was not sent within ${Duration.format(maxAge)} of being accepted`

/** Fails every message of `targets` (locked by the caller) for one reason. */
const failAll = (
  sql: SqlClient.SqlClient,
  events: EventLog["Service"],
  targets: ReadonlyArray<TransitionTarget>,
  reason: string,
  detail: string
) =>
  applyTransitions(
    sql,
    events,
    targets,
    targets.map((target) => ({ id: target.id, status: "failed", reason, detail }))
  )

const channelGoneDetail = {
  channel_deleted: "The channel was deleted before the message was sent",
  channel_logged_out: "The channel was logged out before the message was sent"
} as const

export const layerOutbox = Layer.effect(
  Outbox,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const leases = yield* Leases
    const events = yield* EventLog
    const config = yield* GatewayConfigService
    const inTransaction = transaction(sql)
    const maxAge = `${Duration.toMillis(config.messageMaxAge)} milliseconds`

    /** Locks the channel's messages named and applies the changes, under the lease. */
    const transitions = (
      fence: Fence,
      lookup: "id" | "whatsapp_id",
      keys: ReadonlyArray<string>,
      changes: (targets: ReadonlyArray<TransitionTarget>) => ReadonlyArray<Transition>
    ) =>
      inTransaction(
        Effect.gen(function* () {
          // the lease checked (its row share-locked first, as `check` does), then the channel before its
          // messages, in the order a logout or a delete takes them: the events appended below number
          // themselves on the channel's row, and the other order deadlocks. One round trip: the
          // channel's row is locked in a CTE (one with a locking clause is run on its own, not folded
          // in), which `held` reads before the messages are looked at; none is locked unless it holds.
          const rows = yield* sql<TransitionTarget & { readonly held: boolean }>`
            WITH lease AS (${leases.holding(fence)}),
            channel AS (
              SELECT 1 FROM channels WHERE id = ${fence.channelId} AND EXISTS (SELECT 1 FROM lease)
              FOR NO KEY UPDATE
            ),
            held AS (SELECT EXISTS (SELECT 1 FROM channel) AS held)
            SELECT held.held, m.* FROM held LEFT JOIN LATERAL (
              SELECT ${sql.unsafe(transitionColumns)} FROM messages
              WHERE held.held AND channel_id = ${fence.channelId}
                AND ${sql.unsafe(lookup)} IN ${sql.in([...new Set(keys)])}
              ORDER BY id FOR UPDATE
            ) m ON true`.pipe(Effect.orDie)
          if (rows[0]?.held !== true) return yield* new LeaseLost({ channelId: fence.channelId })
          const targets = rows.flatMap(({ held: _, ...target }) => (target.id === null ? [] : [target]))
          return yield* applyTransitions(sql, events, targets, changes(targets)).pipe(Effect.orDie)
        })
      )

    /**
     * Fails what waited too long, every channel's: nobody may be running the channel to do it. A
     * claimed message is left alone: a live drain that claimed it may be sending it right now (it
     * expires it itself), and one claimed by a drain that died may have been sent (as the drain
     * holds, see `expired` there), so failing it could be untrue; the next drain sends it again under
     * its WhatsApp id.
     */
    const expire = inTransaction(
      Effect.gen(function* () {
        // the channels before their messages, as a logout, a delete or an ack takes them (the events
        // appended number themselves on the channel's row; the other order deadlocks); a channel held
        // by one of those is left for the next sweep
        const channels = yield* sql<{ id: string }>`
          SELECT id FROM channels
          WHERE id IN (
            SELECT DISTINCT channel_id FROM messages
            WHERE status = 'queued' AND created_at < now() - ${maxAge}::interval AND claim_token IS NULL)
          ORDER BY id LIMIT 100 FOR NO KEY UPDATE SKIP LOCKED`
        if (channels.length === 0) return 0
        const targets = yield* sql<TransitionTarget>`
          SELECT ${sql.unsafe(transitionColumns)} FROM messages
          WHERE status = 'queued' AND created_at < now() - ${maxAge}::interval
            AND channel_id IN ${sql.in(channels.map((channel) => channel.id))} AND claim_token IS NULL
          ORDER BY id LIMIT 500 FOR UPDATE OF messages SKIP LOCKED`
        yield* failAll(sql, events, targets, "expired", expiredDetail(config.messageMaxAge))
        return targets.length
      })
    )
    yield* Effect.forkScoped(
      expire.pipe(
        Effect.repeat({ while: (expired) => expired === 500 }),
        Effect.catchCause((cause) => Effect.logWarning("could not expire old queued messages", cause)),
        Effect.repeat(Schedule.spaced("10 seconds"))
      )
    )

    yield* Effect.forkScoped(
      Effect.repeat(
        sql<{ claimed: boolean; n: number }>`
          SELECT claim_token IS NOT NULL AS claimed, count(*)::int AS n FROM messages
          WHERE status = 'queued' GROUP BY 1`.pipe(
          Effect.flatMap((rows) =>
            Effect.forEach([false, true], (claimed) =>
              Metric.update(
                Metric.withAttributes(outboxDepth, { state: claimed ? "sending" : "waiting" }),
                rows.find((row) => row.claimed === claimed)?.n ?? 0
              )
            )
          ),
          Effect.catchCause((cause) => Effect.logDebug("could not count the outbox", cause))
        ),
        Schedule.spaced("10 seconds")
      )
    )

    return Outbox.of({
      claim: (fence, token, limit) =>
        Effect.gen(function* () {
          const rows = yield* sql<{
            id: string
            whatsapp_id: string
            chat: string
            type: string
            content: Record<string, unknown>
            wa_content: Uint8Array | null
            possibly_sent: boolean
            created_at: Date
            ref_whatsapp_id: string | null
            ref_direction: string | null
            ref_chat: string | null
            ref_content: Uint8Array | null
          }>`
            WITH lease AS (${leases.holding(fence)}),
            picked AS (
              SELECT m.id, m.claim_token,
                CASE WHEN m.type = 'reaction' THEN m.content->>'message_id' ELSE m.context_message_id END AS ref
              FROM messages m
              WHERE m.channel_id = ${fence.channelId} AND m.status = 'queued'
                AND m.claim_token IS DISTINCT FROM ${token} AND EXISTS (SELECT 1 FROM lease)
              ORDER BY m.id LIMIT ${limit}
              FOR UPDATE OF m
            )
            UPDATE messages m SET claim_generation = ${fence.generation}, claim_token = ${token}
            FROM picked LEFT JOIN messages r ON r.id = picked.ref
            WHERE m.id = picked.id
            RETURNING m.id, m.whatsapp_id, m.chat, m.type, m.content, m.wa_content,
              picked.claim_token IS NOT NULL AS possibly_sent, m.created_at,
              r.whatsapp_id AS ref_whatsapp_id, r.direction AS ref_direction, r.chat AS ref_chat,
              r.wa_content AS ref_content`.pipe(Effect.orDie)
          if (rows.length === 0) yield* leases.check(fence)
          return rows
            .map((row): OutboxItem => ({
              id: row.id,
              whatsappId: row.whatsapp_id,
              chat: row.chat,
              type: row.type,
              content: row.content,
              prepared: row.wa_content,
              possiblySent: row.possibly_sent,
              createdAt: row.created_at,
              reference:
                row.ref_whatsapp_id === null
                  ? null
                  : {
                      whatsappId: row.ref_whatsapp_id,
                      fromMe: row.ref_direction === "outbound",
                      chat: row.ref_chat ?? row.chat,
                      content: row.ref_content
                    }
            }))
            .sort((a, b) => (a.id < b.id ? -1 : 1))
        }),

      prepared: (fence, contents) =>
        Effect.gen(function* () {
          if (contents.length === 0) return new Map()
          const values = JSON.stringify(
            contents.map(({ id, content }) => ({ id, content: Buffer.from(content).toString("base64") }))
          )
          const stored = yield* sql<{ id: string; wa_content: Uint8Array }>`
            WITH lease AS (${leases.holding(fence)}),
            v AS (SELECT * FROM json_to_recordset(${values}::json) AS v(id text, content text))
            UPDATE messages m SET wa_content = coalesce(m.wa_content, decode(v.content, 'base64'))
            FROM v
            WHERE m.id = v.id AND m.channel_id = ${fence.channelId} AND EXISTS (SELECT 1 FROM lease)
            RETURNING m.id, m.wa_content`.pipe(Effect.orDie)
          if (stored.length === 0) return yield* new LeaseLost({ channelId: fence.channelId })
          return new Map(stored.map((row) => [row.id, row.wa_content]))
        }),

      // a token of 0 is no connection's: claimable again, and counted as possibly sent
      release: (fence, possiblySent, untried) =>
        possiblySent.length + untried.length === 0
          ? Effect.void
          : sql`
              UPDATE messages SET claim_token = CASE
                WHEN id IN (SELECT jsonb_array_elements_text(${JSON.stringify(possiblySent)}::jsonb)) THEN 0
                ELSE NULL END
              WHERE id IN ${sql.in([...possiblySent, ...untried])} AND channel_id = ${fence.channelId}
                AND status = 'queued' AND claim_generation = ${fence.generation}`.pipe(
              Effect.asVoid,
              Effect.orDie
            ),

      fail: (fence, failures) =>
        failures.length === 0
          ? Effect.void
          : Effect.asVoid(
              transitions(
                fence,
                "id",
                failures.map((failure) => failure.id),
                () => failures
              )
            ),

      reportAll: (batches, wait = false) => {
        if (batches.length === 0) return Effect.succeed([])
        const applied = new Set<StatusReport>()
        const keys = [
          ...new Map(
            batches.flatMap(({ fence, reports }) =>
              // an id PostgreSQL's text cannot hold is no message's (each id sent is the gateway's own)
              reports
                .filter((report) => storableText.test(report.whatsappId))
                .map((report) => {
                  const key = { c: fence.channelId, w: report.whatsappId }
                  return [`${key.c}/${key.w}`, key] as const
                })
            )
          ).values()
        ]
        return inTransaction(
          Effect.gen(function* () {
            applied.clear()
            if (wait) yield* sql`SET LOCAL lock_timeout = '1s'`.pipe(Effect.orDie)
            // the leases checked (their rows share-locked first), then the channels in id order, each
            // before its messages, as a logout or a delete takes them (see `transitions`); a channel
            // whose row is locked elsewhere is skipped, its messages untouched
            const rows = yield* sql<TransitionTarget & typeof HeldRow.Encoded>`
              WITH lease AS (${leases.holdingAll(batches.map((batch) => batch.fence))}),
              channel AS (
                SELECT id FROM channels WHERE id IN (SELECT channel_id FROM lease)
                ORDER BY id FOR NO KEY UPDATE ${wait ? sql`` : sql`SKIP LOCKED`}
              ),
              held AS (
                SELECT (SELECT coalesce(jsonb_agg(id), '[]') FROM channel) AS locked,
                  (SELECT coalesce(jsonb_agg(jsonb_build_array(channel_id, generation)), '[]') FROM lease) AS leased
              )
              SELECT held.locked, held.leased, m.* FROM held LEFT JOIN LATERAL (
                SELECT ${sql.unsafe(transitionColumnsOf("m"))} FROM messages m
                  JOIN json_to_recordset(${JSON.stringify(keys)}::json) AS k(c text, w text)
                    ON m.channel_id = k.c AND m.whatsapp_id = k.w
                WHERE m.channel_id IN (SELECT jsonb_array_elements_text(held.locked))
                ORDER BY m.id FOR UPDATE OF m
              ) m ON true`.pipe(Effect.orDie)
            const held = Schema.decodeUnknownSync(HeldRow)(rows[0])
            const locked = new Set(held.locked)
            const leased = new Set(held.leased.map(([channelId, generation]) => `${channelId}/${generation}`))
            const outcomes = batches.map(({ fence }): ReportOutcome =>
              !leased.has(`${fence.channelId}/${fence.generation}`)
                ? "lease_lost"
                : locked.has(fence.channelId)
                  ? "applied"
                  : "held_back"
            )
            const targets = rows.flatMap(({ locked: _, leased: __, ...target }) =>
              target.id === null ? [] : [target as TransitionTarget]
            )
            // each report applied or not, in order: one that moves its message on (a late or repeated
            // one, or one for no message of the channel, does not)
            const current = new Map(
              targets.map((target) => [`${target.channel_id}/${target.whatsapp_id}`, { ...target }])
            )
            const changes = batches.flatMap(({ fence, reports }, i): ReadonlyArray<Transition> =>
              outcomes[i] !== "applied"
                ? []
                : reports.flatMap((report): ReadonlyArray<Transition> => {
                    const message = current.get(`${fence.channelId}/${report.whatsappId}`)
                    const status = statusOfReport(report)
                    if (message === undefined || !advances(message.status, status)) return []
                    message.status = status
                    applied.add(report)
                    return status === "failed" && report._tag === "ServerAck"
                      ? [
                          {
                            id: message.id,
                            status,
                            reason: "whatsapp_error",
                            detail: `WhatsApp refused the message (error ${report.error})`
                          }
                        ]
                      : [{ id: message.id, status }]
                  })
            )
            yield* applyTransitions(sql, events, targets, changes).pipe(Effect.orDie)
            return outcomes
          })
        ).pipe(
          Effect.tap((outcomes) => {
            const counts = new Map<string, number>()
            batches.forEach(({ reports }, i) => {
              if (outcomes[i] !== "applied") return
              for (const report of reports) {
                const labels = `${report._tag === "ServerAck" ? "ack" : "receipt"} ${applied.has(report) ? "applied" : "ignored"}`
                counts.set(labels, (counts.get(labels) ?? 0) + 1)
              }
            })
            return Effect.forEach(counts, ([labels, n]) => {
              const [kind, outcome] = labels.split(" ") as [string, string]
              return Metric.update(Metric.withAttributes(reportsCounted, { kind, outcome }), n)
            })
          })
        )
      },

      pace: (channelId) =>
        sql<{ per_minute: number }>`
          SELECT cu.messages_per_minute AS per_minute
          FROM channels c JOIN customers cu ON cu.id = c.customer_id WHERE c.id = ${channelId}`.pipe(
          Effect.map((rows) => rows[0]?.per_minute ?? 60),
          Effect.orDie
        ),

      sentContent: (channelId, whatsappId) =>
        sql<{ wa_content: Uint8Array | null }>`
          SELECT wa_content FROM messages
          WHERE channel_id = ${channelId} AND whatsapp_id = ${whatsappId} AND direction = 'outbound'`.pipe(
          Effect.map((rows) => rows[0]?.wa_content ?? undefined),
          Effect.orDie
        ),

      readReceipts: (fence, limit) =>
        sql<{ id: string; whatsapp_id: string; chat: string }>`
          SELECT id, whatsapp_id, chat FROM messages
          WHERE channel_id = ${fence.channelId} AND read_receipt = 'pending'
          ORDER BY id LIMIT ${limit}`.pipe(
          Effect.map((rows) =>
            rows.map((row) => ({ id: row.id, whatsappId: row.whatsapp_id, chat: row.chat }))
          ),
          Effect.orDie
        ),

      readReceiptsSent: (fence, ids) =>
        ids.length === 0
          ? Effect.void
          : Effect.gen(function* () {
              const rows = yield* sql`
                WITH lease AS (${leases.holding(fence)})
                UPDATE messages SET read_receipt = 'sent'
                WHERE id IN ${sql.in(ids)} AND channel_id = ${fence.channelId} AND EXISTS (SELECT 1 FROM lease)
                RETURNING id`.pipe(Effect.orDie)
              if (rows.length === 0) return yield* new LeaseLost({ channelId: fence.channelId })
            })
    })
  })
)
