import { expect, layer } from "@effect/vitest"
import type { ChannelId } from "@whatisup/domain"
import { Context, Effect, Layer } from "effect"
import * as crypto from "node:crypto"
import { adminOf, newCustomer } from "./support/admin.ts"
import { type ApiClient, apiClient, waitForStatus } from "./support/api.ts"
import { testDatabase } from "./support/database.ts"
import { gatewayEnvironment, type RunningGateway, startGateway } from "./support/gateway.ts"
import { request } from "./support/http.ts"
import { waitUntil } from "./support/waits.ts"

/** Two gateway processes on one database: pacing must hold whichever of them a request reaches. */
class TwoGateways extends Context.Service<
  TwoGateways,
  { readonly a: RunningGateway; readonly b: RunningGateway }
>()("test/TwoGateways") {}

const layerTwoGateways = Layer.effect(
  TwoGateways,
  Effect.gen(function* () {
    const database = yield* testDatabase
    const shared = { WHATISUP_MASTER_KEYS: `k1:${crypto.randomBytes(32).toString("base64")}` }
    const a = yield* startGateway(yield* gatewayEnvironment(database, shared)).pipe(Effect.orDie)
    const b = yield* startGateway(yield* gatewayEnvironment(database, shared)).pipe(Effect.orDie)
    return { a, b }
  })
)

const byCode = (phoneNumber: string) => ({ method: "pairing_code" as const, phone_number: phoneNumber })

const refused = { _tag: "RateLimited", status: 429, code: "rate_limited" }

/** The same customer's key on both gateways. */
const onBoth = (key: string) =>
  Effect.gen(function* () {
    const { a, b } = yield* TwoGateways
    return [yield* apiClient(a.api, key), yield* apiClient(b.api, key)] as const
  })

const connectByQr = (client: ApiClient, id: ChannelId) =>
  client.channels.connect({ params: { id }, payload: { method: "qr" } })

layer(layerTwoGateways, { timeout: 120_000, excludeTestServices: true })(
  "lifecycle operations are paced, across gateway processes",
  (it) => {
    it.effect(
      "connect, restart and logout of one channel: 6 a minute, then 429 with Retry-After; other channels go on",
      () =>
        Effect.gen(function* () {
          const { a, b } = yield* TwoGateways
          const { key, client } = yield* newCustomer(a, { name: "Looper" })
          const [onA, onB] = yield* onBoth(key)
          const { id } = yield* client.channels.create({ headers: {}, payload: {} })
          const other = yield* client.channels.create({ headers: {}, payload: {} })
          const params = { params: { id } }

          yield* connectByQr(onA, id)
          yield* onB.channels.restart(params)
          yield* onA.channels.logout(params)
          yield* connectByQr(onB, id)
          yield* onA.channels.restart(params)
          yield* onB.channels.logout(params)

          expect(yield* Effect.flip(connectByQr(onA, id))).toMatchObject(refused)
          expect(yield* Effect.flip(connectByQr(onB, id))).toMatchObject(refused)
          const reply = yield* request(b.api, "POST", `/v1/channels/${id}/connect`, {
            key,
            body: { method: "qr" }
          })
          expect(reply.status).toBe(429)
          const retryAfter = Number(reply.headers.get("retry-after"))
          expect(retryAfter).toBeGreaterThanOrEqual(1)
          expect(retryAfter).toBeLessThanOrEqual(60)
          expect(reply.body).toMatchObject({ code: "rate_limited", retry_after: retryAfter })
          expect(reply.body.detail).toBe(
            `A channel may be connected, restarted or logged out 6 times a minute: retry in ${retryAfter} s (Retry-After)`
          )

          // refusals are not counted, and the channel is as the last accepted request left it
          expect((yield* onA.channels.get(params)).status).toBe("logged_out")
          expect((yield* connectByQr(onB, other.id)).status).toBe("pairing")
          const audit = yield* client.audit.list({ query: { resource_type: "channel", resource_id: id } })
          expect(audit.data.filter((e) => e.actor.type === "api_key").map((e) => e.action)).toEqual([
            "channel.logged_out",
            "channel.restart_requested",
            "channel.connect_requested",
            "channel.logged_out",
            "channel.restart_requested",
            "channel.connect_requested",
            "channel.created"
          ])
        })
    )

    it.effect(
      "pairing codes: the plan's count per channel an hour and per customer a day; the audit names the number",
      () =>
        Effect.gen(function* () {
          const { a } = yield* TwoGateways
          const { key, customerId, client } = yield* newCustomer(a, { name: "Prompter" })
          expect((yield* client.me.get({})).customer.plan).toMatchObject({
            pairing_codes_per_channel_per_hour: 3,
            pairing_codes_per_customer_per_day: 20
          })
          const admin = yield* adminOf(a)
          yield* admin.SetPlan({
            id: customerId,
            plan: { pairing_codes_per_channel_per_hour: 2, pairing_codes_per_customer_per_day: 3 }
          })
          const [onA, onB] = yield* onBoth(key)
          const first = yield* client.channels.create({ headers: {}, payload: {} })
          const second = yield* client.channels.create({ headers: {}, payload: {} })

          expect(
            yield* onA.channels.connect({ params: { id: first.id }, payload: byCode("+15550000001") })
          ).toMatchObject({ status: "pairing" })
          yield* onB.channels.logout({ params: { id: first.id } })
          yield* onB.channels.connect({ params: { id: first.id }, payload: byCode("+15550000002") })
          yield* onA.channels.logout({ params: { id: first.id } })
          const perChannel = yield* Effect.flip(
            onA.channels.connect({ params: { id: first.id }, payload: byCode("+15550000003") })
          )
          expect(perChannel).toMatchObject(refused)
          const perChannelWait = perChannel._tag === "RateLimited" ? perChannel.retry_after : 0
          const perChannelDetail = perChannel._tag === "RateLimited" ? perChannel.detail : undefined
          expect(perChannelWait).toBeGreaterThan(3000)
          expect(perChannelDetail).toBe(
            `The plan allows 2 pairing codes per channel an hour: retry in ${perChannelWait} s (Retry-After), or connect with {"method":"qr"}`
          )

          yield* onB.channels.connect({ params: { id: second.id }, payload: byCode("+15550000004") })
          yield* onB.channels.logout({ params: { id: second.id } })
          const perCustomer = yield* Effect.flip(
            onA.channels.connect({ params: { id: second.id }, payload: byCode("+15550000005") })
          )
          expect(perCustomer).toMatchObject(refused)
          const perCustomerWait = perCustomer._tag === "RateLimited" ? perCustomer.retry_after : 0
          const perCustomerDetail = perCustomer._tag === "RateLimited" ? perCustomer.detail : undefined
          expect(perCustomerDetail).toBe(
            `The plan allows 3 pairing codes a day: retry in ${perCustomerWait} s (Retry-After), or connect with {"method":"qr"}`
          )
          // a QR pushes nothing to anyone's phone: it is paced only with the other lifecycle operations
          expect((yield* connectByQr(onA, second.id)).status).toBe("pairing")

          const audit = yield* client.audit.list({
            query: { resource_type: "channel", resource_id: first.id }
          })
          const connects = audit.data.filter((e) => e.action === "channel.connect_requested")
          expect(connects.map((e) => e.data)).toEqual([
            { method: "pairing_code", phone_number: "+15550000002", previous_status: "logged_out" },
            { method: "pairing_code", phone_number: "+15550000001", previous_status: "created" }
          ])
        })
    )

    it.effect(
      "creating, connecting and deleting channels in a loop: 6 operations a minute per channel the plan allows, for the customer, then 429 with Retry-After",
      () =>
        Effect.gen(function* () {
          const { a, b } = yield* TwoGateways
          const { key, client } = yield* newCustomer(a, { name: "Churner", plan: { max_channels: 1 } })
          const [onA, onB] = yield* onBoth(key)
          const connects = (id: ChannelId) => a.whatsapp.connects(id) + b.whatsapp.connects(id)
          const isOpen = (id: ChannelId) => a.whatsapp.isOpen(id) || b.whatsapp.isOpen(id)
          const churned: Array<ChannelId> = []
          // a create, a connect and a delete on each gateway: six operations
          for (const gateway of [onA, onB]) {
            const { id } = yield* gateway.channels.create({ headers: {}, payload: {} })
            churned.push(id)
            yield* connectByQr(gateway, id)
            yield* waitUntil(
              "the channel's connection is open",
              Effect.sync(() => isOpen(id))
            )
            yield* gateway.channels.delete({ params: { id } })
          }
          const refusal = yield* Effect.flip(onA.channels.create({ headers: {}, payload: {} }))
          expect(refusal).toMatchObject({
            ...refused,
            detail: expect.stringMatching(
              /^The plan allows 6 channel creates, deletes, connects, restarts and logouts a minute \(6 for each channel it allows\): retry in \d+ s \(Retry-After\)$/
            )
          })
          const reply = yield* request(b.api, "POST", "/v1/channels", { key, body: {} })
          expect(reply.status).toBe(429)
          const retryAfter = Number(reply.headers.get("retry-after"))
          expect(retryAfter).toBeGreaterThanOrEqual(1)
          expect(retryAfter).toBeLessThanOrEqual(60)
          expect(reply.body).toMatchObject({ code: "rate_limited", retry_after: retryAfter })
          expect((yield* client.channels.list({ query: {} })).data).toEqual([])
          expect(churned.reduce((sum, id) => sum + connects(id), 0)).toBe(2)

          // a delete is paced with the rest (the channel's own five are within its 6): it stays as it was
          const { key: otherKey } = yield* newCustomer(a, { name: "Looper", plan: { max_channels: 1 } })
          const [otherA, otherB] = yield* onBoth(otherKey)
          const { id } = yield* otherA.channels.create({ headers: {}, payload: {} })
          yield* connectByQr(otherB, id)
          yield* otherA.channels.restart({ params: { id } })
          yield* otherB.channels.logout({ params: { id } })
          yield* connectByQr(otherA, id)
          yield* otherB.channels.restart({ params: { id } })
          const paced = yield* Effect.flip(otherB.channels.delete({ params: { id } }))
          expect(paced).toMatchObject({ ...refused, detail: expect.stringContaining("6 channel creates") })
          expect((yield* otherA.channels.get({ params: { id } })).status).toBe("pairing")

          // another customer's channels are its own business
          const { client: bystander } = yield* newCustomer(b, { name: "Bystander" })
          const created = yield* bystander.channels.create({ headers: {}, payload: {} })
          expect((yield* connectByQr(bystander, created.id)).status).toBe("pairing")
        })
    )

    it.effect(
      "a restart of a channel still pairing by code asks WhatsApp for a new code: counted against the plan's pairing-code limits",
      () =>
        Effect.gen(function* () {
          const { a, b } = yield* TwoGateways
          const { key, customerId, client } = yield* newCustomer(a, { name: "Restarter" })
          const admin = yield* adminOf(a)
          yield* admin.SetPlan({
            id: customerId,
            plan: { pairing_codes_per_channel_per_hour: 2, pairing_codes_per_customer_per_day: 3 }
          })
          const [onA, onB] = yield* onBoth(key)
          /** Connections WhatsApp saw for the channel, whichever gateway runs it: each asked for a code. */
          const connects = (id: ChannelId) => a.whatsapp.connects(id) + b.whatsapp.connects(id)
          const isOpen = (id: ChannelId) => a.whatsapp.isOpen(id) || b.whatsapp.isOpen(id)
          const first = yield* client.channels.create({ headers: {}, payload: {} })
          const second = yield* client.channels.create({ headers: {}, payload: {} })

          yield* onA.channels.connect({ params: { id: first.id }, payload: byCode("+15550000011") })
          yield* waitUntil(
            "the first code's connection is open",
            Effect.sync(() => connects(first.id) === 1 && isOpen(first.id))
          )
          expect((yield* onB.channels.restart({ params: { id: first.id } })).status).toBe("pairing")
          yield* waitUntil(
            "the restart opened a connection that asks for a second code",
            Effect.sync(() => connects(first.id) === 2 && isOpen(first.id))
          )
          const perChannel = yield* Effect.flip(onA.channels.restart({ params: { id: first.id } }))
          expect(perChannel).toMatchObject({
            ...refused,
            detail: expect.stringMatching(
              /^The plan allows 2 pairing codes per channel an hour: retry in \d+ s \(Retry-After\), or connect with \{"method":"qr"\}$/
            )
          })
          expect(perChannel._tag === "RateLimited" && perChannel.retry_after).toBeGreaterThan(3000)

          yield* onB.channels.connect({ params: { id: second.id }, payload: byCode("+15550000012") })
          const perCustomer = yield* Effect.flip(onA.channels.restart({ params: { id: second.id } }))
          expect(perCustomer).toMatchObject({
            ...refused,
            detail: expect.stringMatching(
              /^The plan allows 3 pairing codes a day: retry in \d+ s \(Retry-After\), or connect with \{"method":"qr"\}$/
            )
          })

          // once paired, a restart logs in with the stored login and asks for no code: not counted
          yield* waitUntil(
            "the first channel pairs",
            Effect.map(
              Effect.all([
                a.whatsapp.pair(first.id, "+15550000011"),
                b.whatsapp.pair(first.id, "+15550000011")
              ]),
              (paired) => paired.includes(true)
            )
          )
          yield* waitForStatus(client, first.id, "connected")
          expect((yield* onA.channels.restart({ params: { id: first.id } })).status).toBe("connected")
          yield* waitUntil(
            "the restart opened a new connection",
            Effect.sync(() => connects(first.id) === 3)
          )
          yield* waitForStatus(client, first.id, "connected")
        })
    )
  }
)
