import { expect, layer } from "@effect/vitest"
import type { DeliveryId, WebhookEndpointId } from "@whatisup/domain"
import { Effect } from "effect"
import { newCustomer } from "./support/admin.ts"
import type { ApiClient } from "./support/api.ts"
import { sqlFor } from "./support/database.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { answer, startReceiver } from "./support/receiver.ts"
import { waitFor } from "./support/waits.ts"

const seconds = 1000
const minutes = 60 * seconds
const hours = 60 * minutes

/** The pause after each failed attempt, as DESIGN.md sets it; ±20 % jitter. */
const schedule = [5 * seconds, 5 * minutes, 30 * minutes, 2 * hours, 5 * hours, 10 * hours, 10 * hours]

/** The delivery once its `attempts`-th attempt is recorded (the attempt and its next state commit together). */
const recorded = (client: ApiClient, id: DeliveryId, attempts: number) =>
  waitFor(
    `attempt ${attempts} recorded`,
    client.webhooks.delivery({ params: { id } }),
    (delivery) => delivery.attempt_log.length === attempts
  )

layer(layerTestGateway({ WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32" }), {
  timeout: 120_000,
  excludeTestServices: true
})("webhook retries and endpoint health", (it) => {
  /** Makes the delivery due now, as time passing would; the gateway's own clock is not touched. */
  const dueNow = (id: DeliveryId) =>
    Effect.gen(function* () {
      const sql = yield* sqlFor((yield* TestGateway).databaseUrl)
      yield* sql`UPDATE deliveries SET next_attempt_at = now() WHERE id = ${id} AND status = 'pending'`
      yield* sql`SELECT pg_notify('whatisup_deliveries_due', '')`
    })

  const endpointWith = (name: string, respond: Parameters<typeof startReceiver>[0]) =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const receiver = yield* startReceiver(respond)
      const { client, customerId } = yield* newCustomer(gateway, { name })
      const endpoint = yield* client.webhooks.create({ headers: {}, payload: { url: receiver.url } })
      return { client, customerId, endpoint, receiver }
    })

  it.effect(
    "a receiver answering 500: HttpStatus each time, retried on the persisted schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h ±20 %), then failed after 8 attempts",
    () =>
      Effect.gen(function* () {
        const { client, endpoint, receiver } = yield* endpointWith("Failing", () =>
          answer(500, { body: "boom" })
        )
        const test = yield* client.webhooks.test({ params: { id: endpoint.id } })
        for (let attempt = 1; attempt <= 8; attempt++) {
          if (attempt > 1) yield* dueNow(test.id)
          const delivery = yield* recorded(client, test.id, attempt)
          const last = delivery.attempt_log.at(-1)!
          expect(last).toMatchObject({
            attempt,
            status_code: 500,
            error_type: "HttpStatus",
            response: "boom"
          })
          if (attempt < 8) {
            expect(delivery.status).toBe("pending")
            const pause = Date.parse(delivery.next_attempt_at!) - Date.parse(last.attempted_at)
            const nominal = schedule[attempt - 1]!
            expect(pause).toBeGreaterThanOrEqual(nominal * 0.8 - 5)
            expect(pause).toBeLessThanOrEqual(nominal * 1.2 + 5)
          } else {
            expect(delivery).toMatchObject({ status: "failed", next_attempt_at: null, attempts: 8 })
          }
        }
        expect(new Set(receiver.received.map((r) => r.headers["webhook-id"])).size).toBe(1)
        const failing = yield* client.webhooks.get({ params: { id: endpoint.id } })
        expect(failing.failing_since).not.toBeNull()
        expect(failing.status).toBe("enabled")
        // a new URL is a new start: its failures are counted from its first
        const moved = yield* client.webhooks.update({
          params: { id: endpoint.id },
          payload: { url: `${receiver.url}/v2` }
        })
        expect(moved.failing_since).toBeNull()

        // the receiver is fixed: recover queues the failed delivery again, and a success clears failing_since
        receiver.setBehaviour(() => answer(204))
        const recovered = yield* client.webhooks.recover({
          params: { id: endpoint.id },
          payload: { since: new Date(Date.now() - hours).toISOString() }
        })
        expect(recovered.requeued).toBe(1)
        yield* waitFor(
          "the recovered delivery succeeded",
          client.webhooks.delivery({ params: { id: test.id } }),
          (d) => d.status === "succeeded"
        )
        const healthy = yield* waitFor(
          "failing_since cleared",
          client.webhooks.get({ params: { id: endpoint.id } }),
          (e) => e.failing_since === null
        )
        expect(healthy.status).toBe("enabled")
        const statuses = yield* client.webhooks.deliveries({
          params: { id: endpoint.id },
          query: { status: "failed" }
        })
        expect(statuses.data).toEqual([])
      })
  )

  it.effect("429 with Retry-After: the next attempt waits exactly that long (clamped to at least 5 s)", () =>
    Effect.gen(function* () {
      let retryAfter = "42"
      const { client, endpoint } = yield* endpointWith("Throttled", () =>
        answer(429, { headers: { "retry-after": retryAfter } })
      )
      const test = yield* client.webhooks.test({ params: { id: endpoint.id } })
      const first = yield* recorded(client, test.id, 1)
      expect(first.attempt_log[0]).toMatchObject({ status_code: 429, error_type: "HttpStatus" })
      expect(Date.parse(first.next_attempt_at!) - Date.parse(first.attempt_log[0]!.attempted_at)).toBe(
        42 * seconds
      )
      retryAfter = "0"
      yield* dueNow(test.id)
      const second = yield* recorded(client, test.id, 2)
      expect(Date.parse(second.next_attempt_at!) - Date.parse(second.attempt_log[1]!.attempted_at)).toBe(
        5 * seconds
      )
    })
  )

  it.effect("a redirect is a failure and is not followed", () =>
    Effect.gen(function* () {
      const { client, endpoint, receiver } = yield* endpointWith("Moved", (received) =>
        received.path === "/elsewhere" ? answer(200) : answer(302, { headers: { location: "/elsewhere" } })
      )
      const test = yield* client.webhooks.test({ params: { id: endpoint.id } })
      const delivery = yield* recorded(client, test.id, 1)
      expect(delivery.attempt_log[0]).toMatchObject({ status_code: 302, error_type: "HttpStatus" })
      expect(delivery.status).toBe("pending")
      expect(receiver.received.map((r) => r.path)).toEqual(["/"])
    })
  )

  it.effect("a receiver that resets the connection: ConnectionReset, retried", () =>
    Effect.gen(function* () {
      const { client, endpoint } = yield* endpointWith("Resetting", () => ({ _tag: "Reset" }))
      const test = yield* client.webhooks.test({ params: { id: endpoint.id } })
      const delivery = yield* recorded(client, test.id, 1)
      expect(delivery.attempt_log[0]).toMatchObject({ status_code: null, error_type: "ConnectionReset" })
      expect(delivery.status).toBe("pending")
    })
  )

  it.effect("a receiver that never answers: ResponseTimeout after 15 s, retried", () =>
    Effect.gen(function* () {
      const { client, endpoint } = yield* endpointWith("Hanging", () => ({ _tag: "Hang" }))
      const test = yield* client.webhooks.test({ params: { id: endpoint.id } })
      const delivery = yield* waitFor(
        "the attempt timed out",
        client.webhooks.delivery({ params: { id: test.id } }),
        (d) => d.attempt_log.length === 1,
        { attempts: 300, everyMillis: 100 }
      )
      expect(delivery.attempt_log[0]).toMatchObject({ status_code: null, error_type: "ResponseTimeout" })
      expect(delivery.attempt_log[0]!.duration_ms).toBeGreaterThanOrEqual(14_900)
      expect(delivery.status).toBe("pending")
      expect((yield* client.webhooks.get({ params: { id: endpoint.id } })).failing_since).not.toBeNull()
    })
  )

  it.effect(
    "410 disables the endpoint at once: audited, its pending deliveries failed, webhook.disabled posted to the customer's other endpoints that may know of it",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const gone = yield* startReceiver(() => answer(410))
        const witness = yield* startReceiver()
        const bystander = yield* startReceiver()
        const { client } = yield* newCustomer(gateway, { name: "Gone" })
        const channel = yield* client.channels.create({ headers: {}, payload: {} })
        const otherChannel = yield* client.channels.create({ headers: {}, payload: {} })
        const endpoint = yield* client.webhooks.createForChannel({
          params: { id: channel.id },
          headers: {},
          payload: { url: `${gone.url}/private?token=channel-secret` }
        })
        const other = yield* client.webhooks.create({ headers: {}, payload: { url: witness.url } })
        // another channel's endpoint (a key bound to that channel manages it) hears nothing of this one
        yield* client.webhooks.createForChannel({
          params: { id: otherChannel.id },
          headers: {},
          payload: { url: bystander.url }
        })
        const test = yield* client.webhooks.test({ params: { id: endpoint.id } })
        const disabled = yield* waitFor(
          "the endpoint disabled",
          client.webhooks.get({ params: { id: endpoint.id } }),
          (e) => e.status === "disabled"
        )
        expect(disabled.disabled_reason).toBe("endpoint_gone")
        const delivery = yield* client.webhooks.delivery({ params: { id: test.id } })
        expect(delivery).toMatchObject({ status: "failed", next_attempt_at: null })
        expect(delivery.attempt_log[0]).toMatchObject({ status_code: 410, error_type: "HttpStatus" })

        const notice = yield* waitFor(
          "webhook.disabled posted to the customer's endpoint for every channel",
          Effect.sync(() => witness.received),
          (received) => received.length === 1
        )
        expect(JSON.parse(notice[0]!.body)).toMatchObject({
          type: "webhook.disabled",
          data: { endpoint_id: endpoint.id, channel_id: channel.id, disabled_reason: "endpoint_gone" }
        })
        const audit = yield* client.audit.list({
          query: { resource_type: "webhook_endpoint", resource_id: endpoint.id }
        })
        expect(audit.data[0]).toMatchObject({
          action: "webhook_endpoint.disabled",
          actor: { type: "system" },
          data: { disabled_reason: "endpoint_gone" }
        })
        const events = yield* client.events.list({ query: { type: "webhook.disabled" } })
        expect(events.data.map((e) => e.data["endpoint_id"])).toEqual([endpoint.id])
        expect(yield* Effect.flip(client.webhooks.test({ params: { id: endpoint.id } }))).toMatchObject({
          status: 409,
          code: "invalid_state"
        })
        // nothing more is queued for a disabled endpoint
        const after = yield* client.webhooks.test({ params: { id: other.id } })
        yield* waitFor(
          "a later test delivered",
          client.webhooks.delivery({ params: { id: after.id } }),
          (d) => d.status === "succeeded"
        )
        const deliveries = yield* client.webhooks.deliveries({ params: { id: endpoint.id }, query: {} })
        expect(deliveries.data.map((d) => d.id)).toEqual([test.id])
        expect(bystander.received).toEqual([])
        // enabling it again clears the reason
        const enabled = yield* client.webhooks.update({
          params: { id: endpoint.id },
          payload: { enabled: true }
        })
        expect(enabled).toMatchObject({ status: "enabled", disabled_reason: null })
      })
  )

  it.effect("an endpoint failing for 5 days is disabled with disabled_reason failing", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const sql = yield* sqlFor(gateway.databaseUrl)
      const { client, endpoint } = yield* endpointWith("Dying", () => answer(503))
      const first = yield* client.webhooks.test({ params: { id: endpoint.id } })
      yield* recorded(client, first.id, 1)
      expect((yield* client.webhooks.get({ params: { id: endpoint.id } })).status).toBe("enabled")
      // four days and a half of failures: still enabled
      yield* sql`UPDATE webhook_endpoints SET failing_since = now() - interval '4 days 12 hours' WHERE id = ${endpoint.id}`
      yield* dueNow(first.id)
      yield* recorded(client, first.id, 2)
      expect((yield* client.webhooks.get({ params: { id: endpoint.id } })).status).toBe("enabled")
      yield* sql`UPDATE webhook_endpoints SET failing_since = now() - interval '5 days 1 minute' WHERE id = ${endpoint.id}`
      yield* dueNow(first.id)
      const disabled = yield* waitFor(
        "the endpoint disabled",
        client.webhooks.get({ params: { id: endpoint.id as WebhookEndpointId } }),
        (e) => e.status === "disabled"
      )
      expect(disabled.disabled_reason).toBe("failing")
    })
  )

  it.effect(
    "what a receiver answers is kept as text PostgreSQL takes (a NUL byte), and no other attempt is lost with it",
    () =>
      Effect.gen(function* () {
        const nul = yield* endpointWith("Binary", () => answer(500, { body: "bad\u0000byte" }))
        const fine = yield* endpointWith("Fine", () => answer(200, { body: "fine" }))
        const tests = yield* Effect.all([
          nul.client.webhooks.test({ params: { id: nul.endpoint.id } }),
          fine.client.webhooks.test({ params: { id: fine.endpoint.id } })
        ])
        const bad = yield* recorded(nul.client, tests[0].id, 1)
        expect(bad.attempt_log[0]).toMatchObject({ status_code: 500, response: "bad\ufffdbyte" })
        expect(bad.status).toBe("pending")
        const good = yield* recorded(fine.client, tests[1].id, 1)
        expect(good.status).toBe("succeeded")
      })
  )

  it.effect("a delivery with an attempt in flight is not sent again until that attempt ends (409)", () =>
    Effect.gen(function* () {
      const { client, endpoint, receiver } = yield* endpointWith("Slow", () =>
        answer(200, { delayMillis: 1500 })
      )
      const test = yield* client.webhooks.test({ params: { id: endpoint.id } })
      yield* waitFor(
        "the attempt in flight",
        Effect.sync(() => receiver.received.length),
        (n) => n === 1
      )
      expect(yield* Effect.flip(client.webhooks.redeliver({ params: { id: test.id } }))).toMatchObject({
        status: 409,
        code: "invalid_state"
      })
      yield* recorded(client, test.id, 1)
      yield* client.webhooks.redeliver({ params: { id: test.id } })
      yield* recorded(client, test.id, 2)
      expect(receiver.overlaps.size).toBe(0)
    })
  )

  it.effect(
    "a customer whose endpoints all hang holds a quarter of the slots at most; another customer's deliveries go on",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const hanging = yield* startReceiver(() => ({ _tag: "Hang" }))
        const hostile = yield* newCustomer(gateway, { name: "Hostile", plan: { max_webhook_endpoints: 6 } })
        for (let i = 0; i < 6; i++) {
          const endpoint = yield* hostile.client.webhooks.create({
            headers: {},
            payload: { url: `${hanging.url}/${i}` }
          })
          for (let j = 0; j < 10; j++) yield* hostile.client.webhooks.test({ params: { id: endpoint.id } })
        }
        // 6 endpoints × 8 a piece would be 48 of the 64 slots; a customer gets 16
        yield* waitFor(
          "the hostile customer's slots taken",
          Effect.sync(() => hanging.received.length),
          (n) => n >= 16
        )
        const victim = yield* endpointWith("Victim", () => answer(200))
        const sent = yield* Effect.forEach(Array.from({ length: 30 }), () =>
          victim.client.webhooks.test({ params: { id: victim.endpoint.id } })
        )
        yield* waitFor(
          "every one of the other customer's deliveries succeeded",
          victim.client.webhooks.deliveries({
            params: { id: victim.endpoint.id },
            query: { status: "succeeded", limit: 100 }
          }),
          (page) => page.data.length === sent.length
        )
        // still hanging, and still no more of them than the customer's share
        expect(hanging.received.length).toBe(16)
      })
  )
})
