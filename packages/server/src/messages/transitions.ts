import type { EventType, MessageStatus } from "@whatisup/domain"
import { Effect, Metric } from "effect"
import type { SqlClient } from "effect/sql"
import type { EventLog, NewEvent } from "../events/eventLog.ts"

/** How far along a message is: a status moves only to a later one, never back. */
const rank: Record<MessageStatus, number> = {
  queued: 0,
  received: 0,
  sent: 1,
  delivered: 2,
  read: 3,
  played: 4,
  failed: 0
}

/** Whether a message in `from` may move to `to`: forwards only; failed only from queued, and final. */
export const advances = (from: MessageStatus, to: MessageStatus) =>
  from === "failed" ? false : to === "failed" ? from === "queued" : rank[to] > rank[from]

/** What an outbound message went through to reach a status. */
const impliedSteps: Partial<Record<MessageStatus, ReadonlyArray<MessageStatus>>> = {
  delivered: ["sent"],
  read: ["sent", "delivered"],
  played: ["sent", "delivered", "read"]
}

const eventTypes: Partial<Record<MessageStatus, EventType>> = {
  sent: "message.sent",
  delivered: "message.delivered",
  read: "message.read",
  played: "message.read",
  failed: "message.failed"
}

const sendLatency = Metric.histogram("message_send_latency_seconds", {
  description: "From a message's acceptance (queued) to WhatsApp's server ack (sent)",
  boundaries: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400]
})

/** A status a message should reach, with why (for failed). */
export interface Transition {
  readonly id: string
  readonly status: MessageStatus
  readonly reason?: string | undefined
  readonly detail?: string | undefined
}

/** A message as a transition needs it: locked by the caller's transaction. */
export interface TransitionTarget {
  readonly id: string
  readonly customer_id: string
  readonly channel_id: string
  readonly direction: "outbound" | "inbound"
  readonly chat: string
  readonly whatsapp_id: string
  readonly status: MessageStatus
  readonly created_at: Date
}

/**
 * Applies status changes to messages the caller's transaction has locked, in the order given: each
 * that moves its message forward is stored (the message, a history row with its time) and posted as
 * an event (the batch's events appended together); a late, repeated or backward one changes nothing.
 * Answers the changes made.
 */
export const applyTransitions = (
  sql: SqlClient.SqlClient,
  events: EventLog["Service"],
  targets: ReadonlyArray<TransitionTarget>,
  transitions: ReadonlyArray<Transition>
) =>
  Effect.gen(function* () {
    const current = new Map(targets.map((target) => [target.id, { target, status: target.status }]))
    const made: Array<Transition & { readonly target: TransitionTarget }> = []
    for (const transition of transitions) {
      const entry = current.get(transition.id)
      if (entry === undefined || !advances(entry.status, transition.status)) continue
      // a receipt stands for the steps before it that were not reported (WhatsApp folds them together)
      for (const step of impliedSteps[transition.status] ?? []) {
        if (entry.target.direction === "outbound" && advances(entry.status, step)) {
          entry.status = step
          made.push({ id: transition.id, status: step, target: entry.target })
        }
      }
      entry.status = transition.status
      made.push({ ...transition, target: entry.target })
    }
    if (made.length === 0) return made
    const finals = [...current.values()].filter((entry) => entry.status !== entry.target.status)
    // the messages and their history in one statement
    yield* sql`
      WITH f AS (
        SELECT * FROM json_to_recordset(${JSON.stringify(
          finals.map((entry) => {
            const failed =
              entry.status === "failed"
                ? made.find((change) => change.id === entry.target.id && change.status === "failed")
                : undefined
            return {
              id: entry.target.id,
              status: entry.status,
              reason: failed?.reason ?? null,
              detail: failed?.detail ?? null
            }
          })
        )}::json) AS f(id text, status text, reason text, detail text)
      ), updated AS (
        UPDATE messages m SET status = f.status, updated_at = now(),
          failure_reason = coalesce(f.reason, m.failure_reason), failure_detail = coalesce(f.detail, m.failure_detail)
        FROM f WHERE m.id = f.id
      )
      INSERT INTO message_statuses (message_id, status, reason)
      SELECT id, status, reason FROM json_to_recordset(${JSON.stringify(
        made.map((change) => ({ id: change.id, status: change.status, reason: change.reason ?? null }))
      )}::json) AS h(id text, status text, reason text)
      ON CONFLICT (message_id, status) DO NOTHING`
    const appended: Array<NewEvent> = []
    for (const change of made) {
      const { target } = change
      if (change.status === "sent") {
        yield* Metric.update(sendLatency, Math.max(0, Date.now() - target.created_at.getTime()) / 1000)
      }
      // an inbound message's read is the customer's own doing: nothing to tell them
      const type = target.direction === "outbound" ? eventTypes[change.status] : undefined
      if (type === undefined) continue
      appended.push({
        customerId: target.customer_id as never,
        channelId: target.channel_id as never,
        type,
        data: {
          message_id: target.id,
          whatsapp_id: target.whatsapp_id,
          direction: target.direction,
          [target.direction === "outbound" ? "to" : "from"]: target.chat,
          status: change.status,
          ...(change.status === "failed"
            ? { failure: { reason: change.reason ?? "failed", detail: change.detail ?? "" } }
            : {})
        }
      })
    }
    yield* events.appendAll(appended)
    return made
  })

const transitionColumnNames = [
  "id",
  "customer_id",
  "channel_id",
  "direction",
  "chat",
  "whatsapp_id",
  "status",
  "created_at"
] as const

/** The columns `applyTransitions` needs, for a `SELECT ... FOR UPDATE`. */
export const transitionColumns = transitionColumnNames.join(", ")

/** The same columns, of the table named `alias` in the query. */
export const transitionColumnsOf = (alias: string) =>
  transitionColumnNames.map((column) => `${alias}.${column}`).join(", ")
