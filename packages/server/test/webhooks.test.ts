import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Webhook } from "standardwebhooks"
import { newCustomer } from "./support/admin.ts"
import { apiClient, waitForQr, waitForStatus } from "./support/api.ts"
import { sqlFor } from "./support/database.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { request } from "./support/http.ts"
import { type Received, startReceiver } from "./support/receiver.ts"
import { waitFor } from "./support/waits.ts"

const verified = (secret: string, received: Received) =>
  new Webhook(secret).verify(received.body, received.headers as Record<string, string>) as {
    type: string
    timestamp: string
    data: Record<string, unknown>
  }

const ofType = (received: ReadonlyArray<Received>, type: string) =>
  received.filter((r) => (JSON.parse(r.body) as { type: string }).type === type)

layer(layerTestGateway({ WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32", LOG_LEVEL: "warn" }), {
  timeout: 120_000,
  excludeTestServices: true
})("webhooks", (it) => {
  it.effect(
    "every channel event reaches a customer endpoint signed as Standard Webhooks, with the channel id and sequence, the QR in the signed body",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const receiver = yield* startReceiver()
        const { client } = yield* newCustomer(gateway, { name: "Hooked" })
        const endpoint = yield* client.webhooks.create({
          headers: {},
          payload: { url: `${receiver.url}/hooks`, description: "all events" }
        })
        expect(endpoint.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/)
        expect(endpoint).toMatchObject({ channel_id: null, status: "enabled", event_types: [] })

        const channel = yield* client.channels.create({ headers: {}, payload: {} })
        yield* client.channels.connect({ params: { id: channel.id }, payload: { method: "qr" } })
        const qr = yield* waitForQr(client, channel.id)
        yield* gateway.whatsapp.pair(channel.id, "+15550001111")
        yield* waitForStatus(client, channel.id, "connected")

        const arrived = yield* waitFor(
          "channel.qr and channel.connected posted",
          Effect.sync(() => receiver.received),
          (received) => ofType(received, "channel.connected").length === 1
        )
        for (const received of arrived) {
          expect(received.path).toBe("/hooks")
          expect(received.headers["content-type"]).toBe("application/json")
        }
        const posted = arrived.map((received) => verified(endpoint.secret, received))
        const qrEvent = posted.find((event) => event.type === "channel.qr")!
        expect(qrEvent.data).toMatchObject({ channel_id: channel.id, qr: qr.qr })
        const connected = posted.find((event) => event.type === "channel.connected")!
        expect(connected.data).toMatchObject({ channel_id: channel.id, phone_number: "+15550001111" })
        expect(connected.data["sequence"]).toBeGreaterThan(qrEvent.data["sequence"] as number)

        // the webhook-id is the event id of the log
        const events = yield* client.events.list({
          query: { channel_id: channel.id, type: "channel.connected" }
        })
        expect(ofType(arrived, "channel.connected")[0]!.headers["webhook-id"]).toBe(events.data[0]!.id)

        const deliveries = yield* client.webhooks.deliveries({ params: { id: endpoint.id }, query: {} })
        expect(deliveries.data.length).toBe(arrived.length)
        // the attempt is recorded once the receiver has answered
        const one = yield* waitFor(
          "the delivery recorded as succeeded",
          client.webhooks.delivery({ params: { id: deliveries.data[0]!.id } }),
          (delivery) => delivery.status === "succeeded"
        )
        expect(one).toMatchObject({ status: "succeeded", attempts: 1, next_attempt_at: null })
        expect(one.attempt_log).toMatchObject([
          { attempt: 1, status_code: 200, error_type: null, response: "ok" }
        ])
      })
  )

  it.effect(
    "a test event, a rotation during which both secrets sign, and a redelivery with the same webhook-id",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const receiver = yield* startReceiver()
        const { client } = yield* newCustomer(gateway, { name: "Rotating" })
        const endpoint = yield* client.webhooks.create({ headers: {}, payload: { url: receiver.url } })
        const test = yield* client.webhooks.test({ params: { id: endpoint.id } })
        expect(test).toMatchObject({ event_type: "webhook.test", status: "pending" })
        yield* waitFor(
          "the test event posted",
          Effect.sync(() => receiver.received.length),
          (n) => n === 1
        )
        expect(verified(endpoint.secret, receiver.received[0]!).type).toBe("webhook.test")

        const rotated = yield* client.webhooks.rotateSecret({
          params: { id: endpoint.id },
          payload: { grace_period_seconds: 3600 }
        })
        expect(rotated.secret).not.toBe(endpoint.secret)
        expect(rotated.previous_secret_expires_at).not.toBeNull()
        yield* waitFor(
          "the test recorded",
          client.webhooks.delivery({ params: { id: test.id } }),
          (delivery) => delivery.status === "succeeded"
        )
        yield* client.webhooks.redeliver({ params: { id: test.id } })
        yield* waitFor(
          "the redelivery posted",
          Effect.sync(() => receiver.received.length),
          (n) => n === 2
        )
        const again = receiver.received[1]!
        expect(again.headers["webhook-id"]).toBe(receiver.received[0]!.headers["webhook-id"])
        expect(String(again.headers["webhook-signature"]).split(" ")).toHaveLength(2)
        expect(verified(rotated.secret, again).type).toBe("webhook.test")
        expect(verified(endpoint.secret, again).type).toBe("webhook.test")

        // with no grace the previous secret stops signing at once
        const final = yield* client.webhooks.rotateSecret({
          params: { id: endpoint.id },
          payload: { grace_period_seconds: 0 }
        })
        yield* waitFor(
          "the redelivery recorded",
          client.webhooks.delivery({ params: { id: test.id } }),
          (delivery) => delivery.status === "succeeded" && delivery.attempts === 2
        )
        yield* client.webhooks.redeliver({ params: { id: test.id } })
        yield* waitFor(
          "the second redelivery posted",
          Effect.sync(() => receiver.received.length),
          (n) => n === 3
        )
        const last = receiver.received[2]!
        expect(verified(final.secret, last).type).toBe("webhook.test")
        expect(() => verified(rotated.secret, last)).toThrow()
        const log = yield* waitFor(
          "three attempts recorded",
          client.webhooks.delivery({ params: { id: test.id } }),
          (delivery) => delivery.attempt_log.length === 3 && delivery.status === "succeeded"
        )
        expect(log.attempt_log.map((a) => a.attempt)).toEqual([1, 2, 3])
        const audit = yield* client.audit.list({
          query: { resource_type: "webhook_endpoint", resource_id: endpoint.id }
        })
        expect(audit.data.map((e) => e.action)).toEqual([
          "webhook_endpoint.secret_rotated",
          "webhook_endpoint.secret_rotated",
          "webhook_endpoint.tested",
          "webhook_endpoint.created"
        ])
        expect(JSON.stringify(audit.data)).not.toContain(endpoint.secret.slice(6))
      })
  )

  it.effect("a key bound to a channel manages that channel's endpoints only", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const receiver = yield* startReceiver()
      const { client } = yield* newCustomer(gateway, { name: "Bound" })
      const mine = yield* client.channels.create({ headers: {}, payload: {} })
      const other = yield* client.channels.create({ headers: {}, payload: {} })
      const bound = yield* client.apiKeys.create({ headers: {}, payload: { channel_id: mine.id } })
      const boundClient = yield* apiClient(gateway.api, bound.key)
      const everywhere = yield* client.webhooks.create({ headers: {}, payload: { url: receiver.url } })
      const otherHook = yield* client.webhooks.createForChannel({
        params: { id: other.id },
        headers: {},
        payload: { url: receiver.url }
      })
      const mineHook = yield* boundClient.webhooks.createForChannel({
        params: { id: mine.id },
        headers: {},
        payload: { url: receiver.url, event_types: ["channel.connected"] }
      })
      expect(mineHook.channel_id).toBe(mine.id)
      expect(
        yield* Effect.flip(boundClient.webhooks.create({ headers: {}, payload: { url: receiver.url } }))
      ).toMatchObject({
        status: 403,
        code: "forbidden"
      })
      expect(
        yield* Effect.flip(
          boundClient.webhooks.createForChannel({
            params: { id: other.id },
            headers: {},
            payload: { url: receiver.url }
          })
        )
      ).toMatchObject({ status: 404 })
      for (const hidden of [everywhere.id, otherHook.id]) {
        expect(yield* Effect.flip(boundClient.webhooks.get({ params: { id: hidden } }))).toMatchObject({
          status: 404
        })
        expect(yield* Effect.flip(boundClient.webhooks.delete({ params: { id: hidden } }))).toMatchObject({
          status: 404
        })
      }
      expect((yield* boundClient.webhooks.list({ query: {} })).data.map((w) => w.id)).toEqual([mineHook.id])
      expect((yield* client.webhooks.list({ query: {} })).data.map((w) => w.id)).toEqual([
        mineHook.id,
        otherHook.id,
        everywhere.id
      ])
      expect(
        (yield* client.webhooks.listForChannel({ params: { id: other.id }, query: {} })).data.map((w) => w.id)
      ).toEqual([otherHook.id])
      // another customer sees none of them
      const stranger = yield* newCustomer(gateway, { name: "Stranger" })
      expect(yield* Effect.flip(stranger.client.webhooks.get({ params: { id: mineHook.id } }))).toMatchObject(
        {
          status: 404
        }
      )
      expect((yield* stranger.client.webhooks.list({ query: {} })).data).toEqual([])
    })
  )

  it.effect("bad input answers 400 naming the field", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const { key, client } = yield* newCustomer(gateway, { name: "Careless" })
      const endpoint = yield* client.webhooks.create({
        headers: {},
        payload: { url: "http://127.0.0.1:9/x" }
      })
      const cases: Array<[string, string, unknown, string]> = [
        ["POST", "/v1/webhooks", { url: "not a url" }, "body.url"],
        ["POST", "/v1/webhooks", { url: "ftp://example.com/" }, "body.url"],
        ["POST", "/v1/webhooks", { url: "http://10.1.2.3/hooks" }, "body.url"],
        ["POST", "/v1/webhooks", { url: "http://169.254.169.254/latest/meta-data" }, "body.url"],
        ["POST", "/v1/webhooks", { url: "http://[::ffff:127.0.0.2]/" }, "body.url"],
        ["POST", "/v1/webhooks", { url: "http://user:secret@127.0.0.1:9/" }, "body.url"],
        ["POST", "/v1/webhooks", { url: "http://no-such-host.invalid/" }, "body.url"],
        ["POST", "/v1/webhooks", { url: "http://127.0.0.1:9/a\u0000b" }, "body.url"],
        ["POST", "/v1/webhooks", { url: "http://127.0.0.1:9/\ud800" }, "body.url"],
        ["PATCH", `/v1/webhooks/${endpoint.id}`, { url: "http://192.168.1.1/" }, "body.url"],
        [
          "POST",
          "/v1/webhooks",
          { url: "http://127.0.0.1:9/", event_types: ["message.nope"] },
          "body.event_types"
        ],
        [
          "POST",
          "/v1/webhooks",
          { url: "http://127.0.0.1:9/", description: "x".repeat(501) },
          "body.description"
        ],
        ["POST", "/v1/webhooks", { url: "http://127.0.0.1:9/", colour: "blue" }, "body.colour"],
        ["PATCH", `/v1/webhooks/${endpoint.id}`, { enabled: "yes" }, "body.enabled"],
        [
          "POST",
          `/v1/webhooks/${endpoint.id}/rotate-secret`,
          { grace_period_seconds: 604801 },
          "body.grace_period_seconds"
        ],
        ["POST", `/v1/webhooks/${endpoint.id}/recover`, { since: "yesterday" }, "body.since"],
        ["GET", `/v1/webhooks/${endpoint.id}/deliveries?status=lost`, undefined, "query.status"],
        ["GET", `/v1/webhooks/wh_nope`, undefined, "path.id"]
      ]
      for (const [method, path, body, field] of cases) {
        const reply = yield* request(gateway.api, method, path, {
          key,
          ...(body === undefined ? {} : { body })
        })
        expect({ path, status: reply.status }).toEqual({ path, status: 400 })
        expect(reply.body.errors.map((e: { path: string }) => e.path).join(",")).toContain(field)
      }
      const refused = yield* request(gateway.api, "POST", "/v1/webhooks", {
        key,
        body: { url: "http://10.1.2.3/" }
      })
      expect(refused.body.errors[0].message).toMatch(/10\.1\.2\.3.*non_public_address/)
      // nothing refused was stored
      expect((yield* client.webhooks.list({ query: {} })).data.map((w) => w.id)).toEqual([endpoint.id])
    })
  )

  it.effect(
    "the plan limits endpoints; deleting a channel deletes its endpoints; an idempotent create replays its secret until it stops signing",
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const receiver = yield* startReceiver()
        const { client } = yield* newCustomer(gateway, {
          name: "Limited",
          plan: { max_webhook_endpoints: 2 }
        })
        const channel = yield* client.channels.create({ headers: {}, payload: {} })
        const first = yield* client.webhooks.create({
          headers: { "idempotency-key": "hook-1" },
          payload: { url: receiver.url }
        })
        const replayed = yield* client.webhooks.create({
          headers: { "idempotency-key": "hook-1" },
          payload: { url: receiver.url }
        })
        expect(replayed).toEqual(first)
        const second = yield* client.webhooks.createForChannel({
          params: { id: channel.id },
          headers: {},
          payload: { url: receiver.url }
        })
        expect(
          yield* Effect.flip(client.webhooks.create({ headers: {}, payload: { url: receiver.url } }))
        ).toMatchObject({
          status: 403,
          code: "plan_limit_reached",
          limit: "max_webhook_endpoints",
          max: 2
        })
        yield* client.channels.delete({ params: { id: channel.id } })
        expect(yield* Effect.flip(client.webhooks.get({ params: { id: second.id } }))).toMatchObject({
          status: 404
        })
        // the channel's endpoint no longer counts
        yield* client.webhooks.create({ headers: {}, payload: { url: receiver.url } })

        yield* client.webhooks.rotateSecret({ params: { id: first.id }, payload: {} })
        expect(
          yield* Effect.flip(
            client.webhooks.create({
              headers: { "idempotency-key": "hook-1" },
              payload: { url: receiver.url }
            })
          )
        ).toMatchObject({ status: 409, code: "idempotent_answer_revoked", resource_id: first.id })
      })
  )

  it.effect("/metrics counts attempts by outcome and error type, and the delivery lag", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const receiver = yield* startReceiver()
      const { client } = yield* newCustomer(gateway, { name: "Measured" })
      const endpoint = yield* client.webhooks.create({ headers: {}, payload: { url: receiver.url } })
      const test = yield* client.webhooks.test({ params: { id: endpoint.id } })
      yield* waitFor(
        "the test delivered",
        client.webhooks.delivery({ params: { id: test.id } }),
        (d) => d.status === "succeeded"
      )
      const metrics = yield* waitFor(
        "the attempt counted",
        Effect.promise(() =>
          fetch(`${gateway.admin}/metrics`, {
            headers: { authorization: `Bearer ${gateway.adminToken}` }
          }).then((r) => r.text())
        ),
        (text) => /whatisup_webhook_attempts_total\{[^}]*outcome="succeeded"[^}]*\} [1-9]/.test(text)
      )
      expect(metrics).toMatch(/whatisup_webhook_delivery_lag_seconds_count\S* [1-9]/)
      expect(metrics).toContain("whatisup_webhook_deliveries_due")
      expect(metrics).toContain("whatisup_webhook_oldest_due_seconds")
    })
  )

  it.effect("a QR goes out in the signed body only while it can be scanned", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const sql = yield* sqlFor(gateway.databaseUrl)
      const receiver = yield* startReceiver()
      const { client } = yield* newCustomer(gateway, { name: "Late Reader" })
      const endpoint = yield* client.webhooks.create({
        headers: {},
        payload: { url: receiver.url, event_types: ["channel.qr"] }
      })
      const channel = yield* client.channels.create({ headers: {}, payload: {} })
      yield* client.channels.connect({ params: { id: channel.id }, payload: { method: "qr" } })
      const qr = yield* waitForQr(client, channel.id)
      const first = yield* waitFor(
        "the QR posted",
        Effect.sync(() => receiver.received),
        (received) => received.length >= 1
      )
      const posted = verified(endpoint.secret, first[0]!)
      expect(posted.data["qr"]).toBe(qr.qr)
      const delivery = (yield* client.webhooks.deliveries({
        params: { id: endpoint.id },
        query: {}
      })).data.at(-1)!
      yield* waitFor(
        "the QR's delivery recorded",
        client.webhooks.delivery({ params: { id: delivery.id } }),
        (d) => d.status === "succeeded"
      )
      // the QR expired: a redelivery says when it expired, and carries no QR
      yield* sql`
        UPDATE events SET data = jsonb_set(data, '{expires_at}', to_jsonb(${new Date(Date.now() - 1000).toISOString()}::text))
        WHERE id = ${delivery.event_id}`
      const seen = receiver.received.length
      yield* client.webhooks.redeliver({ params: { id: delivery.id } })
      const again = yield* waitFor(
        "the redelivery posted",
        Effect.sync(() => receiver.received),
        (received) => received.length > seen
      )
      const late = verified(endpoint.secret, again.at(-1)!)
      expect(late.type).toBe("channel.qr")
      expect(late.data["qr"]).toBeUndefined()
      expect(again.at(-1)!.body).not.toContain(qr.qr)
    })
  )
})
