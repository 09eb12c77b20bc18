import type { ChannelId } from "@whatisup/domain"
import { Effect, type Scope } from "effect"
import { adminOf, newCustomer } from "../../server/test/support/admin.ts"
import { databaseOn, sqlFor } from "../../server/test/support/database.ts"
import { type GatewayProcess, spawnGateway, waitReady } from "../../server/test/support/process.ts"
import { pairedChannel, simulator } from "../../server/test/support/simulator.ts"
import { nodeEnvironments } from "./gateway.ts"
import { apiOf, databaseNow } from "./gatewayProcesses.ts"
import { ensure, percentile, processCpuMillis, tenths, waitUntil } from "./measure.ts"
import { drainPerMinute, heldPerMinute, outboundStatusOf, resendsFigure, targetMillis } from "./recovery.ts"
import type { Report } from "./report.ts"

/** Long enough for a slow machine, short enough that a stuck run ends. */
const withinMillis = 300_000

/** Phones paired at once: as the phones benchmark does. */
const pairingConcurrency = 10

/** The numbers messages go to: accounts of the simulator, each a phone that decrypts what it gets. */
const contacts = Array.from({ length: 10 }, (_, i) => `1555009${String(i).padStart(4, "0")}`)

const pad = (n: number) => String(n).padStart(5, "0")

export interface RecoveryBaileysSize {
  readonly channels: number
  /** Messages queued on the killed process's channels when it is killed. */
  readonly messages: number
}

/**
 * `recovery` on real Baileys against the simulator (in this process) instead of the recording
 * transport: two gateway OS processes on one database share `channels` paired phones; the one
 * running more of them gets a backlog of `messages` held by the plan's pace, and is SIGKILLed. How
 * long until each of its channels is connected again from the other (its Baileys socket logged in
 * with the stored credentials), and until the backlog has been sent from there; failing the run unless
 * every message reached its recipient's phone (decrypted there) under its own WhatsApp id.
 */
export const recoveryBaileys = (
  serverUrl: string,
  { channels, messages }: RecoveryBaileysSize
): Effect.Effect<Report, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const sim = yield* simulator
    const database = yield* databaseOn(serverUrl)
    const sql = yield* sqlFor(database.url)
    const environments = yield* nodeEnvironments(database.url, 2)
    const start = (env: Record<string, string>) =>
      Effect.tap(spawnGateway({ ...env, WHATISUP_WA_WS_URL: sim.url, LOG_LEVEL: "warn" }), (gateway) =>
        waitReady(gateway, apiOf(env))
      )
    // the first one migrates the database; then the other
    const nodes: Array<{ id: string; env: Record<string, string>; process: GatewayProcess }> = []
    for (const { id, env } of environments) nodes.push({ id, env, process: yield* start(env) })
    const entry = nodes[0]!.env
    const gateway = {
      api: apiOf(entry),
      admin: `http://${entry.WHATISUP_ADMIN_LISTEN}`,
      adminToken: entry.WHATISUP_ADMIN_TOKEN!
    }
    const { client, customerId } = yield* newCustomer(gateway, {
      name: "Bench",
      plan: { max_channels: channels, messages_per_minute: heldPerMinute }
    })
    const outboundStatus = outboundStatusOf(sql)

    // 1. the phones, paired through the first process's API: each channel runs where its lease is
    const ids = yield* Effect.forEach(
      Array.from({ length: channels }, (_, i) => i),
      (i) => pairedChannel(client, sim, `4477006${pad(i)}`),
      { concurrency: pairingConcurrency }
    )
    const owners = yield* sql<{ owner: string; channel_id: ChannelId }>`
      SELECT owner, channel_id FROM channel_leases WHERE channel_id IN ${sql.in(ids)}`.pipe(Effect.orDie)
    const count = (node: string) => owners.filter((row) => row.owner === node).length
    const victim = nodes.reduce((most, node) => (count(node.id) > count(most.id) ? node : most))
    const survivor = nodes.find((node) => node !== victim)!
    const held = owners.filter((row) => row.owner === victim.id).map((row) => row.channel_id)
    yield* ensure(
      held.length > 0 && count(survivor.id) > 0,
      `the channels are not shared: ${count(victim.id)} on ${victim.id}, ${count(survivor.id)} on ${survivor.id}`
    )

    // 2. each of the victim's channels spends its burst at once, so the backlog queued next waits
    const send = (channel: ChannelId, i: number) =>
      client.messages.send({
        params: { id: channel },
        headers: {},
        payload: { to: `+${contacts[i % contacts.length]}`, type: "text", text: { body: `message ${i}` } }
      })
    const first = yield* Effect.forEach(held, (channel, i) => send(channel, i), { concurrency: 16 })
    yield* waitUntil(
      `the first message of each of ${held.length} channels is sent`,
      Effect.map(outboundStatus, (status) => status.sent === held.length),
      withinMillis
    )
    const backlog = yield* Effect.forEach(
      Array.from({ length: messages }, (_, i) => i),
      (i) => send(held[i % held.length]!, held.length + i),
      { concurrency: 16 }
    )
    const admin = yield* adminOf(gateway)
    yield* admin.SetPlan({ id: customerId, plan: { messages_per_minute: drainPerMinute } })
    const atKill = yield* outboundStatus
    yield* ensure(
      atKill.queued === messages && atKill.sent === held.length,
      `the pace did not hold the messages: ${atKill.queued} queued and ${atKill.sent} sent before the kill`
    )

    // 3. SIGKILL it; its channels connect on the survivor, which sends their backlog
    const [mark] = yield* sql<{ id: string }>`SELECT coalesce(max(id), '') AS id FROM events`.pipe(
      Effect.orDie
    )
    const cpuBefore = yield* processCpuMillis(survivor.process.child.pid!)
    const killedAt = yield* databaseNow(sql)
    victim.process.child.kill("SIGKILL")
    yield* Effect.promise(() => victim.process.exited)
    const reconnected = sql<{ channel_id: ChannelId; at: number }>`
      SELECT channel_id, (extract(epoch FROM min(created_at)) * 1000)::float8 AS at FROM events
      WHERE type = 'channel.connected' AND id > ${mark!.id} AND channel_id IN ${sql.in(held)}
      GROUP BY channel_id`.pipe(Effect.orDie)
    yield* waitUntil(
      `the ${held.length} channels of ${victim.id} connect on ${survivor.id}`,
      Effect.map(reconnected, (rows) => rows.length === held.length),
      withinMillis
    )
    const connectedMillis = (yield* reconnected).map((row) => row.at - killedAt)
    yield* waitUntil(
      `the ${messages} queued messages are sent`,
      Effect.map(outboundStatus, (status) => status.queued === 0),
      withinMillis
    )
    const cpuMillis = (yield* processCpuMillis(survivor.process.child.pid!)) - cpuBefore
    const status = yield* outboundStatus
    yield* ensure(
      status.other === 0 && status.sent === messages + held.length,
      `${status.other} messages failed, ${status.sent} of ${messages + held.length} were sent`
    )
    // the plan was raised with the victim alive: what it sent before the kill would shorten the figure
    const [sentBeforeKill] = yield* sql<{ n: number }>`
      SELECT count(*)::int AS n FROM message_statuses s JOIN messages m ON m.id = s.message_id
      WHERE m.direction = 'outbound' AND s.status = 'sent' AND s.at < to_timestamp(${killedAt / 1000})`.pipe(
      Effect.orDie
    )
    yield* ensure(
      sentBeforeKill!.n === held.length,
      `${sentBeforeKill!.n} messages were sent before the kill, not the ${held.length} first ones`
    )
    const owned = yield* sql<{ n: number }>`
      SELECT count(*)::int AS n FROM channel_leases WHERE channel_id IN ${sql.in(held)} AND owner = ${survivor.id}`.pipe(
      Effect.orDie
    )
    yield* ensure(
      owned[0]!.n === held.length,
      `${owned[0]!.n} of ${held.length} channels moved to ${survivor.id}`
    )
    const [sentAt] = yield* sql<{ at: number }>`
      SELECT (extract(epoch FROM max(s.at)) * 1000)::float8 AS at
      FROM message_statuses s JOIN messages m ON m.id = s.message_id
      WHERE m.direction = 'outbound' AND s.status = 'sent'`.pipe(Effect.orDie)
    const emptyMillis = sentAt!.at - killedAt

    // 4. at the phones: every message decrypted, under its own WhatsApp id; a resend (that id again) counted
    const sent = [...first, ...backlog]
    const copies = () => {
      const seen = new Map<string, number>()
      for (const contact of contacts) {
        for (const message of sim.received(contact)) seen.set(message.id, (seen.get(message.id) ?? 0) + 1)
      }
      return seen
    }
    yield* waitUntil(
      `every one of the ${sent.length} messages is decrypted by its recipient's phone`,
      Effect.sync(() => {
        const seen = copies()
        return sent.every((message) => seen.has(message.whatsapp_id))
      }),
      withinMillis
    )
    const seen = copies()
    yield* ensure(
      seen.size === sent.length,
      `the phones got ${seen.size} WhatsApp ids, not the ${sent.length} sent`
    )
    const resends = [...seen.values()].reduce((sum, n) => sum + n, 0) - seen.size
    const connectedMax = Math.max(...connectedMillis)

    return {
      benchmark: "recovery-baileys",
      title: `${messages} messages queued on the busier of 2 gateway processes (${channels} phones on real Baileys against the simulator), SIGKILLed; default lease settings`,
      parameters: {
        processes: 2,
        channels,
        messages,
        transport: "baileys",
        simulator: "the benchmark's process",
        killed: victim.id,
        held_per_minute: heldPerMinute,
        drain_per_minute: drainPerMinute,
        recipients: contacts.length
      },
      figures: [
        {
          key: "kill_channels",
          label: "channels the killed process ran",
          value: held.length,
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
          label: "SIGKILL until a channel is connected elsewhere, p50",
          value: tenths(percentile(connectedMillis, 50)),
          unit: "ms"
        },
        {
          key: "connected_max_ms",
          label: "SIGKILL until every channel is connected elsewhere",
          value: tenths(connectedMax),
          unit: "ms"
        },
        {
          key: "outbox_empty_ms",
          label: "SIGKILL until the last message is recorded sent",
          value: tenths(emptyMillis),
          unit: "ms"
        },
        {
          key: "recovered_ms",
          label: "SIGKILL until every channel is connected and the outbox is empty",
          value: tenths(Math.max(connectedMax, emptyMillis)),
          unit: "ms",
          target: { atMost: targetMillis }
        },
        {
          key: "survivor_cpu_ms",
          label: "CPU the survivor used until the outbox was seen empty",
          value: Math.round(cpuMillis),
          unit: "ms"
        },
        resendsFigure(resends)
      ]
    } satisfies Report
  })
