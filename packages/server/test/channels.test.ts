import { expect, layer } from "@effect/vitest"
import { ChannelStatus } from "@whatisup/domain"
import { Effect } from "effect"
import { waitFor, waitUntil } from "./support/waits.ts"
import { newCustomer } from "./support/admin.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { sqlFor } from "./support/database.ts"
import { request } from "./support/http.ts"

const layerUnderTest = layerTestGateway()

const channelStatus = (api: string, key: string, id: string) =>
  Effect.map(request(api, "GET", `/v1/channels/${id}`, { key }), (reply) => reply.body.status as string)

const becomes = (api: string, key: string, id: string, status: string) =>
  waitFor(`channel ${id} is ${status}`, channelStatus(api, key, id), (current) => current === status)

layer(layerUnderTest, { timeout: 120_000, excludeTestServices: true })("channels through the API", (it) => {
  it.effect("create, list, get, rename and delete, with the plan's channel limit", () =>
    Effect.gen(function* () {
      const { api } = yield* TestGateway
      const { key } = yield* newCustomer(yield* TestGateway, {
        name: "Two Phones",
        plan: { max_channels: 2 }
      })
      const first = yield* request(api, "POST", "/v1/channels", { key, body: { name: "sales" } })
      expect(first.status).toBe(201)
      expect(first.body).toMatchObject({
        name: "sales",
        status: "created",
        phone_number: null,
        status_reason: null
      })
      expect(first.body.id).toMatch(/^ch_[0-9a-z]{26}$/)
      const second = yield* request(api, "POST", "/v1/channels", { key, body: {} })
      expect(second.body.name).toBeNull()
      const third = yield* request(api, "POST", "/v1/channels", { key, body: {} })
      expect(third.status).toBe(403)
      expect(third.body).toMatchObject({ code: "plan_limit_reached", limit: "max_channels", max: 2 })

      const list = yield* request(api, "GET", "/v1/channels", { key })
      expect(list.body.data.map((c: { id: string }) => c.id)).toEqual([second.body.id, first.body.id])
      const renamed = yield* request(api, "PATCH", `/v1/channels/${first.body.id}`, {
        key,
        body: { name: "support" }
      })
      expect(renamed.body.name).toBe("support")
      expect((yield* request(api, "GET", `/v1/channels/${first.body.id}`, { key })).body.name).toBe("support")

      const deleted = yield* request(api, "DELETE", `/v1/channels/${second.body.id}`, { key })
      expect(deleted.status).toBe(200)
      expect(deleted.body.status).toBe("deleted")
      expect((yield* request(api, "GET", `/v1/channels/${second.body.id}`, { key })).status).toBe(404)
      expect((yield* request(api, "POST", "/v1/channels", { key, body: {} })).status).toBe(201)

      const audit = yield* request(
        api,
        "GET",
        `/v1/audit-events?resource_type=channel&resource_id=${first.body.id}`,
        {
          key
        }
      )
      expect(audit.body.data.map((e: { action: string }) => e.action)).toEqual([
        "channel.updated",
        "channel.created"
      ])
    })
  )

  it.effect(
    "connect by QR: the QR as JSON, PNG and SVG, the phone scans, channel.connected with the number",
    () =>
      Effect.gen(function* () {
        const { api, whatsapp } = yield* TestGateway
        const { key } = yield* newCustomer(yield* TestGateway, { name: "Scanner" })
        const channel = (yield* request(api, "POST", "/v1/channels", { key, body: {} })).body
        const notPairing = yield* request(api, "GET", `/v1/channels/${channel.id}/qr`, { key })
        expect(notPairing.status).toBe(409)
        expect(notPairing.body).toMatchObject({ code: "invalid_state", current_status: "created" })

        const accepted = yield* request(api, "POST", `/v1/channels/${channel.id}/connect`, {
          key,
          body: { method: "qr" }
        })
        expect(accepted.status).toBe(202)
        expect(accepted.body).toEqual({ status: "pairing" })

        const qr = yield* waitFor(
          "the QR is shown",
          request(api, "GET", `/v1/channels/${channel.id}/qr`, { key }),
          (reply) => reply.status === 200
        )
        expect(qr.body.qr).toMatch(/^2@memory-/)
        expect(Date.parse(qr.body.expires_at)).toBeGreaterThan(Date.now())

        const png = yield* Effect.promise(() =>
          fetch(`${api}/v1/channels/${channel.id}/qr`, {
            headers: { authorization: `Bearer ${key}`, accept: "image/png" }
          }).then(async (r) => ({
            type: r.headers.get("content-type"),
            bytes: new Uint8Array(await r.arrayBuffer())
          }))
        )
        expect(png.type).toBe("image/png")
        expect([...png.bytes.slice(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
        const svg = yield* request(api, "GET", `/v1/channels/${channel.id}/qr`, {
          key,
          headers: { accept: "image/svg+xml" }
        })
        expect(svg.headers.get("content-type")).toBe("image/svg+xml")
        expect(svg.text).toMatch(/^<svg/)
        // q-values decide: a client that would rather not have PNG gets JSON
        const refusesPng = yield* request(api, "GET", `/v1/channels/${channel.id}/qr`, {
          key,
          headers: { accept: "image/png;q=0, application/json;q=0.5" }
        })
        expect(refusesPng.body.qr).toBe(qr.body.qr)
        const prefersSvg = yield* request(api, "GET", `/v1/channels/${channel.id}/qr`, {
          key,
          headers: { accept: "image/png;q=0.4, image/svg+xml;q=0.9, */*;q=0.1" }
        })
        expect(prefersSvg.headers.get("content-type")).toBe("image/svg+xml")

        expect(yield* whatsapp.pair(channel.id, "+15551234567")).toBe(true)
        yield* becomes(api, key, channel.id, "connected")
        const connected = (yield* request(api, "GET", `/v1/channels/${channel.id}`, { key })).body
        expect(connected.phone_number).toBe("+15551234567")
        expect(connected.last_connected_at).not.toBeNull()
        expect((yield* request(api, "GET", `/v1/channels/${channel.id}/qr`, { key })).status).toBe(409)

        const events = yield* request(api, "GET", `/v1/events?channel_id=${channel.id}`, { key })
        const types = events.body.data.map((e: { type: string }) => e.type)
        expect(types).toEqual(["channel.connected", "channel.qr"])
        const [connectedEvent, qrEvent] = events.body.data
        expect(connectedEvent.data).toEqual({
          channel_id: channel.id,
          sequence: 2,
          phone_number: "+15551234567"
        })
        expect(qrEvent.data).toMatchObject({ channel_id: channel.id, sequence: 1, qr: qr.body.qr })
        const onlyConnected = yield* request(
          api,
          "GET",
          `/v1/events?type=channel.connected&channel_id=${channel.id}`,
          {
            key
          }
        )
        expect(onlyConnected.body.data).toHaveLength(1)
      })
  )

  it.effect("logout unlinks the device and allows a new connect; restart reconnects without a new QR", () =>
    Effect.gen(function* () {
      const { api, whatsapp } = yield* TestGateway
      const { key } = yield* newCustomer(yield* TestGateway, { name: "Logger Outer" })
      const channel = (yield* request(api, "POST", "/v1/channels", { key, body: {} })).body
      yield* request(api, "POST", `/v1/channels/${channel.id}/connect`, { key, body: { method: "qr" } })
      yield* waitUntil(
        "the channel's connection is open",
        Effect.sync(() => whatsapp.isOpen(channel.id))
      )
      yield* whatsapp.pair(channel.id, "+15550001111")
      yield* becomes(api, key, channel.id, "connected")

      const connectsBefore = whatsapp.connects(channel.id)
      const restarted = yield* request(api, "POST", `/v1/channels/${channel.id}/restart`, { key })
      expect(restarted.status).toBe(202)
      yield* waitUntil(
        "the restart connects again",
        Effect.sync(() => whatsapp.connects(channel.id) > connectsBefore)
      )
      yield* becomes(api, key, channel.id, "connected")

      const loggedOut = yield* request(api, "POST", `/v1/channels/${channel.id}/logout`, { key })
      expect(loggedOut.status).toBe(202)
      expect(loggedOut.body).toMatchObject({ status: "logged_out", status_reason: "logout_requested" })
      yield* waitUntil(
        "the logout closes the connection",
        Effect.sync(() => !whatsapp.isOpen(channel.id))
      )
      expect(whatsapp.logouts(channel.id)).toBe(1)
      expect(yield* whatsapp.isPaired(channel.id)).toBe(false)

      const again = yield* request(api, "POST", `/v1/channels/${channel.id}/logout`, { key })
      expect(again.status).toBe(409)
      expect(again.body.current_status).toBe("logged_out")
      expect((yield* request(api, "POST", `/v1/channels/${channel.id}/restart`, { key })).status).toBe(409)
      const reconnect = yield* request(api, "POST", `/v1/channels/${channel.id}/connect`, {
        key,
        body: { method: "qr" }
      })
      expect(reconnect.body.status).toBe("pairing")
    })
  )

  it.effect("connect refuses a state that does not allow it, and bad bodies name the field", () =>
    Effect.gen(function* () {
      const { api } = yield* TestGateway
      const { key } = yield* newCustomer(yield* TestGateway, { name: "Picky" })
      const channel = (yield* request(api, "POST", "/v1/channels", { key, body: {} })).body
      const cases: Array<[unknown, string]> = [
        [{}, "body.method"],
        [{ method: "telepathy" }, "body.method"],
        [{ method: "pairing_code" }, "body.phone_number"],
        [{ method: "pairing_code", phone_number: "5551234" }, "body.phone_number"],
        [{ method: "pairing_code", phone_number: "+0123456789" }, "body.phone_number"],
        [{ method: "qr", extra: true }, "body.extra"]
      ]
      for (const [body, path] of cases) {
        const reply = yield* request(api, "POST", `/v1/channels/${channel.id}/connect`, { key, body })
        expect(reply.status, JSON.stringify(body)).toBe(400)
        expect(reply.body.code).toBe("invalid_request")
        expect(
          (reply.body.errors as Array<{ path: string }>).some((e) => e.path === path),
          `${JSON.stringify(body)}: ${JSON.stringify(reply.body.errors)}`
        ).toBe(true)
      }
      const byCode = yield* request(api, "POST", `/v1/channels/${channel.id}/connect`, {
        key,
        body: { method: "pairing_code", phone_number: "+15551234567" }
      })
      expect(byCode.status).toBe(202)
      // the code to type into the phone, straight from connect, and on the channel while pairing
      expect(byCode.body).toEqual({ status: "pairing", pairing_code: "MEMO1234" })
      expect((yield* request(api, "GET", `/v1/channels/${channel.id}`, { key })).body.pairing_code).toBe(
        "MEMO1234"
      )
      const twice = yield* request(api, "POST", `/v1/channels/${channel.id}/connect`, {
        key,
        body: { method: "qr" }
      })
      expect(twice.status).toBe(409)
      expect(twice.body).toMatchObject({ code: "invalid_state", current_status: "pairing" })
      for (const [method, path, body] of [
        ["PATCH", `/v1/channels/${channel.id}`, { name: "" }],
        ["PATCH", `/v1/channels/${channel.id}`, {}],
        ["POST", "/v1/channels", { name: 7 }]
      ] as const) {
        const reply = yield* request(api, method, path, { key, body })
        expect(reply.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(400)
      }
      for (const [method, path] of [
        ["GET", "/v1/channels/nope"],
        ["PATCH", "/v1/channels/ch_x"],
        ["DELETE", "/v1/channels/CH_01M8AHR742SKBETAR1CRG621TP"],
        ["POST", "/v1/channels/key_01m8ahr742skbetar1crg621tp/connect"],
        ["GET", "/v1/channels/ch_01m8ahr742skbetar1crg621t/qr"],
        ["POST", "/v1/channels/nope/logout"],
        ["POST", "/v1/channels/nope/restart"]
      ] as const) {
        const body = method === "PATCH" ? { name: "x" } : method === "POST" ? { method: "qr" } : undefined
        const reply = yield* request(api, method, path, { key, ...(body === undefined ? {} : { body }) })
        expect(reply.status, `${method} ${path}`).toBe(400)
        expect(
          reply.body.errors.map((e: { path: string }) => e.path),
          `${method} ${path}`
        ).toEqual(["path.id"])
      }
      expect((yield* request(api, "GET", "/v1/channels/ch_01m8ahr742skbetar1crg621tp", { key })).status).toBe(
        404
      )
      expect((yield* request(api, "GET", "/v1/events?type=channel.exploded", { key })).status).toBe(400)
      expect((yield* request(api, "GET", "/v1/events?channel_id=nope", { key })).status).toBe(400)
    })
  )

  it.effect("a key bound to a channel sees and acts on that channel alone", () =>
    Effect.gen(function* () {
      const { api, whatsapp } = yield* TestGateway
      const { key } = yield* newCustomer(yield* TestGateway, { name: "Binder" })
      const mine = (yield* request(api, "POST", "/v1/channels", { key, body: { name: "bound" } })).body
      const other = (yield* request(api, "POST", "/v1/channels", { key, body: { name: "other" } })).body
      const bound = yield* request(api, "POST", "/v1/api-keys", {
        key,
        body: { name: "bot", channel_id: mine.id }
      })
      expect(bound.status).toBe(201)
      expect(bound.body.channel_id).toBe(mine.id)
      const b = bound.body.key as string

      expect((yield* request(api, "GET", "/v1/me", { key: b })).body.channel_id).toBe(mine.id)
      expect(
        (yield* request(api, "GET", "/v1/channels", { key: b })).body.data.map((c: { id: string }) => c.id)
      ).toEqual([mine.id])
      expect((yield* request(api, "GET", `/v1/channels/${other.id}`, { key: b })).status).toBe(404)
      expect(
        (yield* request(api, "POST", `/v1/channels/${other.id}/connect`, { key: b, body: { method: "qr" } }))
          .status
      ).toBe(404)
      expect((yield* request(api, "POST", "/v1/channels", { key: b, body: {} })).status).toBe(403)
      expect((yield* request(api, "DELETE", `/v1/channels/${mine.id}`, { key: b })).status).toBe(403)
      expect((yield* request(api, "GET", "/v1/api-keys", { key: b })).status).toBe(403)
      expect((yield* request(api, "POST", "/v1/api-keys", { key: b, body: {} })).status).toBe(403)

      expect(
        (yield* request(api, "POST", `/v1/channels/${mine.id}/connect`, { key: b, body: { method: "qr" } }))
          .status
      ).toBe(202)
      yield* request(api, "POST", `/v1/channels/${other.id}/connect`, { key, body: { method: "qr" } })
      yield* waitUntil(
        "both channels' connections are open",
        Effect.sync(() => whatsapp.isOpen(mine.id) && whatsapp.isOpen(other.id))
      )
      yield* waitFor(
        "both channels have an event",
        request(api, "GET", "/v1/events", { key }),
        (r) => r.body.data.length >= 2
      )
      const events = yield* request(api, "GET", "/v1/events", { key: b })
      expect(events.body.data.length).toBeGreaterThan(0)
      for (const event of events.body.data) expect(event.data.channel_id).toBe(mine.id)
      expect((yield* request(api, "GET", `/v1/events?channel_id=${other.id}`, { key: b })).body.data).toEqual(
        []
      )
      const audit = yield* request(api, "GET", "/v1/audit-events", { key: b })
      expect(audit.body.data.map((e: { action: string }) => e.action)).toContain("channel.connect_requested")
      for (const entry of audit.body.data) expect(entry.resource_id).toBe(mine.id)

      const unknownChannel = yield* request(api, "POST", "/v1/api-keys", {
        key,
        body: { channel_id: "ch_01m8ahr742skbetar1crg621tp" }
      })
      expect(unknownChannel.status).toBe(400)
      expect(unknownChannel.body.errors[0].path).toBe("body.channel_id")
    })
  )

  it.effect("logout then connect at once: the old device is unlinked and a new pairing starts", () =>
    Effect.gen(function* () {
      const { api, whatsapp } = yield* TestGateway
      const { key } = yield* newCustomer(yield* TestGateway, { name: "Hasty" })
      const channel = (yield* request(api, "POST", "/v1/channels", { key, body: {} })).body
      yield* request(api, "POST", `/v1/channels/${channel.id}/connect`, { key, body: { method: "qr" } })
      yield* waitUntil(
        "the channel's connection is open",
        Effect.sync(() => whatsapp.isOpen(channel.id))
      )
      yield* whatsapp.pair(channel.id, "+15554443333")
      yield* becomes(api, key, channel.id, "connected")
      const connects = whatsapp.connects(channel.id)

      expect((yield* request(api, "POST", `/v1/channels/${channel.id}/logout`, { key })).status).toBe(202)
      const again = yield* request(api, "POST", `/v1/channels/${channel.id}/connect`, {
        key,
        body: { method: "qr" }
      })
      expect(again.status).toBe(202)
      yield* waitUntil(
        "the old device is unlinked",
        Effect.sync(() => whatsapp.logouts(channel.id) === 1)
      )
      yield* waitUntil(
        "a new pairing connects once",
        Effect.sync(() => whatsapp.connects(channel.id) === connects + 1)
      )
      yield* waitFor(
        "a new QR is shown",
        request(api, "GET", `/v1/channels/${channel.id}/qr`, { key }),
        (r) => r.status === 200
      )
      expect(yield* whatsapp.isPaired(channel.id)).toBe(false)
    })
  )

  it.effect("a 515 after the scan moves pairing to connecting, and the used QR is gone", () =>
    Effect.gen(function* () {
      const { api, whatsapp } = yield* TestGateway
      const { key } = yield* newCustomer(yield* TestGateway, { name: "Scanned" })
      const channel = (yield* request(api, "POST", "/v1/channels", { key, body: {} })).body
      yield* request(api, "POST", `/v1/channels/${channel.id}/connect`, { key, body: { method: "qr" } })
      yield* waitFor(
        "the QR is shown",
        request(api, "GET", `/v1/channels/${channel.id}/qr`, { key }),
        (r) => r.status === 200
      )
      // the phone scanned: WhatsApp asks for a restart, and the first reconnect fails (a 1 s backoff)
      yield* whatsapp.failConnects(channel.id, 1)
      yield* whatsapp.scan(channel.id, "+15553332222")
      yield* becomes(api, key, channel.id, "connecting")
      const gone = yield* request(api, "GET", `/v1/channels/${channel.id}/qr`, { key })
      expect(gone.status).toBe(409)
      expect(gone.body.current_status).toBe("connecting")
      yield* becomes(api, key, channel.id, "connected")
      const events = yield* request(
        api,
        "GET",
        `/v1/events?channel_id=${channel.id}&type=channel.disconnected`,
        {
          key
        }
      )
      expect(events.body.data[0].data.code).toBe(515)
      const audit = yield* request(api, "GET", `/v1/audit-events?resource_id=${channel.id}`, { key })
      expect(audit.body.data.map((e: { action: string }) => e.action)).toContain("channel.disconnected")
    })
  )

  it.effect("the channels gauge on /metrics follows the database, back to zero", () =>
    Effect.gen(function* () {
      const { admin, databaseUrl } = yield* TestGateway
      const sql = yield* sqlFor(databaseUrl)
      const matches = Effect.gen(function* () {
        const metrics = yield* Effect.promise(() => fetch(`${admin}/metrics`).then((r) => r.text()))
        const counts = yield* sql<{ status: string; n: number }>`
          SELECT status, count(*)::int AS n FROM channels GROUP BY status`
        const byStatus = new Map(counts.map((row) => [row.status, row.n]))
        const statuses = ChannelStatus.literals
        return statuses.every((status) =>
          metrics.includes(`whatisup_channels{status="${status}"} ${byStatus.get(status) ?? 0}\n`)
        )
      }).pipe(Effect.orDie)
      yield* waitUntil("the gauge shows each status's count in the database", matches, {
        attempts: 100,
        everyMillis: 100
      })
    }).pipe(Effect.scoped)
  )
})
