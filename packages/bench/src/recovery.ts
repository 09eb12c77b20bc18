import type { ChannelId } from "@whatisup/domain"
import { Effect, type Scope } from "effect"
import type { SqlClient } from "effect/sql"
import { adminOf } from "../../server/test/support/admin.ts"
import { recordedSends } from "../../server/test/support/recordingTransport.ts"
import {
  busiest,
  connectedChannels,
  countsOn,
  movedElsewhere,
  openOn,
  ranOnceAtATime,
  recordingGateways,
  sigkill,
  withinMillis
} from "./gatewayProcesses.ts"
import { ensure, percentile, processCpuMillis, tenths, waitUntil } from "./measure.ts"
import type { Report } from "./report.ts"

/** What the issue asks of recovery: every channel running elsewhere and the outbox empty. */
export const targetMillis = 10_000

/** The plan's pace while the messages queue: the least there is, one message a minute per channel. */
export const heldPerMinute = 1

/** The plan's pace once they are queued (the most a plan allows): what the survivor drains at. */
export const drainPerMinute = 1_000_000

/** Messages sent again after the kill: as the design allows, under their own WhatsApp ids. */
export const resendsFigure = (resends: number) => ({
  key: "resends",
  label: "messages sent again (the same WhatsApp id)",
  value: resends,
  unit: "messages"
})

/** The outbound messages still queued, sent or later, and anything else (failed). */
export const outboundStatusOf = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql<{ queued: number; sent: number; other: number }>`
      SELECT count(*) FILTER (WHERE status = 'queued')::int AS queued,
        count(*) FILTER (WHERE status IN ('sent', 'delivered', 'read', 'played'))::int AS sent,
        count(*) FILTER (WHERE status NOT IN ('queued', 'sent', 'delivered', 'read', 'played'))::int AS other
      FROM messages WHERE direction = 'outbound'`,
    (rows) => rows[0]!
  ).pipe(Effect.orDie)

export interface RecoverySize {
  readonly processes: number
  readonly channels: number
  /** Messages queued on the killed process's channels when it is killed. */
  readonly messages: number
}

/**
 * Real gateway OS processes on one database with the default lease settings, on the recording
 * transport (WhatsApp acknowledges each send at once), one of them with a backlog of queued messages
 * on its channels, held there by the plan's pace: SIGKILL it and measure how long until each of its
 * channels runs on another process and its backlog is sent from there; and, failing the run
 * otherwise, that every message went out (a resend keeps its WhatsApp id) and no channel ever ran
 * twice at once.
 */
export const recovery = (
  serverUrl: string,
  { processes, channels, messages }: RecoverySize
): Effect.Effect<Report, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    yield* ensure(processes >= 2, "the recovery benchmark needs at least 2 processes")
    const gateways = yield* recordingGateways(serverUrl, processes)
    const { sql, nodes, connections, endings } = gateways
    const outboundStatus = outboundStatusOf(sql)

    // 1. the channels, connected and shared; the customer's plan paces them to one message a minute
    const { client, customerId, ids } = yield* connectedChannels(gateways, channels, {
      messages_per_minute: heldPerMinute
    })
    const victim = busiest(nodes, countsOn(yield* connections, endings))
    const onVictim = new Set(openOn(yield* connections, endings, victim.id))
    const held = ids.filter((id) => onVictim.has(id))
    const send = (channel: ChannelId, i: number) =>
      client.messages.send({
        params: { id: channel },
        headers: {},
        payload: { to: `+1555${String(i).padStart(7, "0")}`, type: "text", text: { body: `message ${i}` } }
      })

    // 2. each of its channels spends its burst (one message at a pace of one a minute) at once, so the
    // backlog queued next waits for the pace
    yield* Effect.forEach(held, (channel, i) => send(channel, i), { concurrency: 16, discard: true })
    yield* waitUntil(
      `the first message of each of ${held.length} channels is sent`,
      Effect.map(outboundStatus, (status) => status.sent === held.length),
      withinMillis
    )
    yield* Effect.forEach(
      Array.from({ length: messages }, (_, i) => i),
      (i) => send(held[i % held.length]!, held.length + i),
      { concurrency: 16, discard: true }
    )
    // what the processes that take over will drain at (a drain reads the pace when it starts)
    const entry = nodes[0]!.env
    const admin = yield* adminOf({
      admin: `http://${entry.WHATISUP_ADMIN_LISTEN}`,
      adminToken: entry.WHATISUP_ADMIN_TOKEN
    })
    yield* admin.SetPlan({ id: customerId, plan: { messages_per_minute: drainPerMinute } })
    const atKill = yield* outboundStatus
    yield* ensure(
      atKill.queued === messages && atKill.sent === held.length,
      `the pace did not hold the messages: ${atKill.queued} queued and ${atKill.sent} sent before the kill, not ${messages} and ${held.length}`
    )

    // 3. SIGKILL it; its channels move to the others, where their backlog is sent
    const survivors = nodes.filter((node) => node !== victim)
    const survivorsCpu = Effect.map(
      Effect.forEach(survivors, (node) => processCpuMillis(node.process.child.pid!)),
      (millis) => millis.reduce((sum, m) => sum + m, 0)
    )
    const cpuBefore = yield* survivorsCpu
    const { killedAt, lostChannels } = yield* sigkill(gateways, victim)
    const live = survivors.map((node) => node.id)
    const { millis: connectedMillis } = yield* movedElsewhere(
      gateways,
      `killed ${victim.id}`,
      victim.id,
      lostChannels,
      killedAt,
      ids,
      live
    )
    yield* waitUntil(
      `the ${messages} queued messages are sent`,
      Effect.map(outboundStatus, (status) => status.queued === 0),
      withinMillis
    )
    const cpuMillis = (yield* survivorsCpu) - cpuBefore
    const status = yield* outboundStatus
    yield* ensure(
      status.other === 0 && status.sent === messages + held.length,
      `${status.other} messages failed, ${status.sent} of ${messages + held.length} were sent`
    )
    yield* ranOnceAtATime(gateways, ids)

    // 4. each message went out under its own WhatsApp id; a resend (the same id again) is counted
    const outbound = yield* sql<{ whatsapp_id: string }>`
      SELECT whatsapp_id FROM messages WHERE direction = 'outbound'`.pipe(Effect.orDie)
    const sends = yield* recordedSends(sql)
    const known = new Set(outbound.map((row) => row.whatsapp_id))
    const sentIds = new Set(sends.map((row) => row.whatsapp_id))
    const unknown = [...sentIds].filter((id) => !known.has(id))
    const unsent = [...known].filter((id) => !sentIds.has(id))
    yield* ensure(
      unknown.length === 0 && unsent.length === 0,
      `${unsent.length} messages never reached WhatsApp and ${unknown.length} WhatsApp ids sent are no message's`
    )
    const before = sends.filter((row) => row.sent_at < killedAt)
    yield* ensure(
      before.length === held.length && before.every((row) => row.node_id === victim.id),
      `${before.length} sends before the kill, not ${held.length} by ${victim.id}`
    )
    const after = sends.filter((row) => row.sent_at >= killedAt)
    yield* ensure(
      after.every((row) => live.includes(row.node_id)),
      `${victim.id} sent after it was killed`
    )
    const resends = sends.length - sentIds.size
    const sentAt = yield* sql<{ at: number }>`
      SELECT (extract(epoch FROM max(s.at)) * 1000)::float8 AS at
      FROM message_statuses s JOIN messages m ON m.id = s.message_id
      WHERE m.direction = 'outbound' AND s.status = 'sent'`.pipe(Effect.orDie)
    const emptyMillis = sentAt[0]!.at - killedAt
    const firstSend = Math.min(...after.map((row) => row.sent_at))
    const lastSend = Math.max(...after.map((row) => row.sent_at))
    const connectedMax = Math.max(...connectedMillis)

    return {
      benchmark: "recovery",
      title: `${messages} messages queued on the busiest of ${processes} gateway processes (${channels} channels, recording transport), SIGKILLed; default lease settings`,
      parameters: {
        processes,
        channels,
        messages,
        lease_ttl_ms: gateways.ttlMillis,
        lease_ttl_source: "default (WHATISUP_LEASE_TTL unset)",
        takeover_grace_ms: gateways.graceMillis,
        killed: victim.id,
        held_per_minute: heldPerMinute,
        drain_per_minute: drainPerMinute,
        sent_before_kill: before.length
      },
      figures: [
        {
          key: "kill_channels",
          label: "channels the killed process ran",
          value: lostChannels.length,
          unit: "channels"
        },
        {
          key: "queued_at_kill",
          label: "messages queued on them at the kill",
          value: atKill.queued,
          unit: "messages"
        },
        {
          key: "connected_p50_ms",
          label: "SIGKILL until a channel runs elsewhere, p50",
          value: tenths(percentile(connectedMillis, 50)),
          unit: "ms"
        },
        {
          key: "connected_max_ms",
          label: "SIGKILL until every channel runs elsewhere",
          value: tenths(connectedMax),
          unit: "ms"
        },
        {
          key: "first_sent_ms",
          label: "SIGKILL until the first queued message is sent",
          value: tenths(firstSend - killedAt),
          unit: "ms"
        },
        {
          key: "outbox_empty_ms",
          label: "SIGKILL until the last one is recorded sent",
          value: tenths(emptyMillis),
          unit: "ms"
        },
        {
          key: "drain_per_s",
          label: "sent a second, first to last send after the kill",
          value: Math.round(after.length / Math.max(0.001, (lastSend - firstSend) / 1000)),
          unit: "/s"
        },
        {
          key: "recovered_ms",
          label: "SIGKILL until every channel runs and the outbox is empty",
          value: tenths(Math.max(connectedMax, emptyMillis)),
          unit: "ms",
          target: { atMost: targetMillis }
        },
        {
          key: "survivors_cpu_ms",
          label: "CPU the other processes used until the outbox was seen empty",
          value: Math.round(cpuMillis),
          unit: "ms"
        },
        resendsFigure(resends)
      ]
    } satisfies Report
  })
