import type { Simulator } from "@whatisup/wa-simulator"
import { Effect, type Scope } from "effect"
import * as crypto from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import type { InboundMessage } from "../../server/src/channels/transport.ts"
import { newCustomer } from "../../server/test/support/admin.ts"
import { baileysTransport } from "../../server/test/support/baileys.ts"
import { pairedChannel } from "../../server/test/support/simulator.ts"
import { pairedBareConnection } from "./bareBaileys.ts"
import { baileysBenchGateway } from "./gateway.ts"
import { ensure, judged, millisSince, percentile } from "./measure.ts"
import type { Report } from "./report.ts"

export interface InboundSize {
  /** Messages in the measured run of each receiving side. */
  readonly messages: number
  /** The phone's steady sending rate. */
  readonly perSecond: number
  /** Contacts the messages come from, in turn (each contact's first message opens a Signal session). */
  readonly contacts: number
}

/** What the issue asks of the gateway, from the phone's send to the customer's receiver. */
const targets = { p50Ms: 25, p99Ms: 100 }

/** Bound on a run: far beyond any figure, so only a broken run reaches it. */
const withinMillis = 120_000

const gatewayPhone = "447700100001"
const barePhone = "447700100002"
const contact = (n: number) => `1555020${String(n).padStart(4, "0")}`

/** A WhatsApp message id as phones make them. */
const whatsappId = () => `3EB0${crypto.randomBytes(8).toString("hex").toUpperCase()}`

interface Expected {
  readonly arrived: Map<string, number>
  readonly done: Promise<void>
}

/**
 * A customer's webhook receiver on 127.0.0.1: it notes when each `message.received` arrives (by the
 * message's WhatsApp id), answering 200 at once on a kept-alive connection.
 */
const receiver = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{
        readonly url: string
        readonly server: http.Server
        readonly expect: (ids: ReadonlyArray<string>) => Expected
      }>((resolve) => {
        let expected:
          { ids: ReadonlySet<string>; arrived: Map<string, number>; resolve: () => void } | undefined
        const server = http.createServer({ keepAliveTimeout: 60_000 }, (request, response) => {
          let body = ""
          request.setEncoding("utf8").on("data", (chunk: string) => (body += chunk))
          request.on("end", () => {
            const at = performance.now()
            response.writeHead(200, { "content-type": "text/plain", "content-length": "2" })
            response.end("ok")
            // the event's data is the message
            const event = JSON.parse(body) as { type: string; data: { whatsapp_id?: string } }
            const id = event.data.whatsapp_id
            const current = expected
            if (event.type !== "message.received" || id === undefined || current === undefined) return
            if (!current.ids.has(id) || current.arrived.has(id)) return
            current.arrived.set(id, at)
            if (current.arrived.size === current.ids.size) current.resolve()
          })
        })
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as AddressInfo
          resolve({
            url: `http://127.0.0.1:${port}`,
            server,
            expect: (ids) => {
              let done = () => {}
              const arrived = new Map<string, number>()
              expected = { ids: new Set(ids), arrived, resolve: () => done() }
              return { arrived, done: new Promise<void>((resolve) => (done = resolve)) }
            }
          })
        })
      })
  ),
  ({ server }) =>
    Effect.promise(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections()
          server.close(() => resolve())
        })
    )
)

/**
 * The floor, beside the gateway in the same run: the gateway's own Baileys transport alone (a login
 * kept in memory, no database), paired to its own phone number, which posts each inbound message to
 * the receiver as soon as Baileys hands it over, as `message.received` with its WhatsApp id and sender, and lets
 * WhatsApp's receipt go once the receiver answered: the simulator, Baileys and one HTTP post.
 */
const bareReceiver = (sim: Simulator, hooks: string) =>
  Effect.gen(function* () {
    const post = (message: InboundMessage) =>
      fetch(hooks, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          type: "message.received",
          timestamp: new Date().toISOString(),
          data: { whatsapp_id: message.whatsappId, from: message.from }
        })
      }).then((response) => response.text())
    yield* pairedBareConnection(sim, yield* baileysTransport(sim.url), barePhone, (messages) =>
      Effect.promise(() => Promise.all(messages.map(post)))
    )
  })

/**
 * Inbound latency: a phone in the simulator sends `messages` messages at a steady rate to a channel
 * paired with real Baileys in a gateway in this process, whose webhook endpoint is a receiver in this
 * process; each is timed from the phone's send (the call to the simulator) to the receiver getting its
 * `message.received`. The same is measured against the bare Baileys transport posting straight to the
 * receiver (see `bareReceiver`), in the same run.
 */
export const inbound = (
  serverUrl: string,
  { messages, perSecond, contacts }: InboundSize
): Effect.Effect<Report, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const sink = yield* receiver
    const { sim, gateway } = yield* baileysBenchGateway(serverUrl, {
      WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32"
    })
    // no plan limit paces inbound messages or their webhooks; newCustomer raises the API rate
    const { client } = yield* newCustomer(gateway, { name: "Bench" })
    yield* pairedChannel(client, sim, gatewayPhone)
    yield* client.webhooks.create({
      headers: {},
      payload: { url: `${sink.url}/hooks`, event_types: ["message.received"] }
    })
    yield* bareReceiver(sim, `${sink.url}/bare`)

    /**
     * `count` messages to `phone`, one every 1/perSecond s from contacts in turn, each timed from its
     * send until the receiver got it; fails unless every one arrives.
     */
    const run = (phone: string, count: number) =>
      Effect.gen(function* () {
        const ids = Array.from({ length: count }, whatsappId)
        const expected = sink.expect(ids)
        const sentAt = new Map<string, number>()
        const start = performance.now()
        for (const [i, id] of ids.entries()) {
          const due = start + (i * 1000) / perSecond
          yield* Effect.promise(
            () => new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())))
          )
          sentAt.set(id, performance.now())
          const delivered = yield* Effect.promise(() =>
            sim.deliver(phone, {
              from: contact(i % contacts),
              id,
              message: { conversation: `Hello! Is order ${4700 + i} on its way? Thanks.` }
            })
          )
          yield* ensure(
            delivered.devices === 1 && !delivered.queued,
            `${id} went out to the one device of ${phone}`
          )
        }
        const sendingMillis = millisSince(start)
        yield* Effect.promise(() => expected.done).pipe(
          Effect.timeoutOrElse({
            duration: withinMillis,
            orElse: () =>
              Effect.die(
                `only ${expected.arrived.size} of ${count} messages to ${phone} reached the receiver`
              )
          })
        )
        const latencies = ids.map((id) => expected.arrived.get(id)! - sentAt.get(id)!)
        return {
          p50Ms: round(percentile(latencies, 50)),
          p99Ms: round(percentile(latencies, 99)),
          maxMs: round(Math.max(...latencies)),
          achievedPerSecond: round((count - 1) / (sendingMillis / 1000))
        }
      })

    // every contact opens its Signal session with each side first, unmeasured, and the JIT warms up
    const warmUp = Math.max(contacts, 20)
    yield* run(gatewayPhone, warmUp)
    yield* run(barePhone, warmUp)
    const viaGateway = yield* run(gatewayPhone, messages)
    const bare = yield* run(barePhone, messages)

    return {
      benchmark: "inbound",
      title: `inbound message to webhook received: ${messages} messages at ${perSecond}/s through the simulator, the gateway vs bare Baileys posting`,
      parameters: {
        messages,
        per_second: perSecond,
        contacts,
        warm_up_messages: warmUp,
        transport: "baileys",
        receiver: "in-process"
      },
      figures: [
        {
          key: "gateway_p50_ms",
          label: "gateway: p50 send → received",
          value: viaGateway.p50Ms,
          unit: "ms",
          target: { atMost: targets.p50Ms }
        },
        {
          key: "gateway_p99_ms",
          label: "gateway: p99 send → received",
          value: viaGateway.p99Ms,
          unit: "ms",
          target: { atMost: targets.p99Ms }
        },
        { key: "gateway_max_ms", label: "gateway: slowest", value: viaGateway.maxMs, unit: "ms" },
        {
          key: "gateway_sent_per_s",
          label: "gateway: rate the phone achieved",
          value: viaGateway.achievedPerSecond,
          unit: "msg/s"
        },
        { key: "bare_p50_ms", label: "bare Baileys posting: p50", value: bare.p50Ms, unit: "ms" },
        { key: "bare_p99_ms", label: "bare Baileys posting: p99", value: bare.p99Ms, unit: "ms" },
        { key: "bare_max_ms", label: "bare Baileys posting: slowest", value: bare.maxMs, unit: "ms" },
        {
          key: "bare_sent_per_s",
          label: "bare: rate the phone achieved",
          value: bare.achievedPerSecond,
          unit: "msg/s"
        },
        {
          key: "ratio_p50",
          label: "gateway p50 / bare p50",
          value: judged(viaGateway.p50Ms / bare.p50Ms),
          unit: ""
        },
        {
          key: "ratio_p99",
          label: "gateway p99 / bare p99",
          value: judged(viaGateway.p99Ms / bare.p99Ms),
          unit: ""
        }
      ]
    } satisfies Report
  })

const round = (value: number) => Math.round(value * 10) / 10
