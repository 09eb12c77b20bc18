import { expect, layer } from "@effect/vitest"
import { ChannelId, ChannelStatus } from "@whatisup/domain"
import { Effect } from "effect"
import { newCustomer } from "./support/admin.ts"
import { apiClient, waitForQr, waitForStatus } from "./support/api.ts"
import { columnsHolding, sqlFor } from "./support/database.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { request } from "./support/http.ts"
import { waitFor, waitUntil } from "./support/waits.ts"

layer(layerTestGateway(), { timeout: 120_000, excludeTestServices: true })(
  "channels through the API",
  (it) => {
    it.effect("create, list, get, rename and delete, with the plan's channel limit", () =>
      Effect.gen(function* () {
        const { client } = yield* newCustomer(yield* TestGateway, {
          name: "Two Phones",
          plan: { max_channels: 2 }
        })
        const first = yield* client.channels.create({ headers: {}, payload: { name: "sales" } })
        expect(first).toMatchObject({
          name: "sales",
          status: "created",
          phone_number: null,
          status_reason: null
        })
        expect(first.id).toMatch(/^ch_[0-9a-z]{26}$/)
        const second = yield* client.channels.create({ headers: {}, payload: {} })
        expect(second.name).toBeNull()
        const third = yield* client.channels.create({ headers: {}, payload: {} }).pipe(Effect.flip)
        expect(third).toMatchObject({
          _tag: "PlanLimitReached",
          status: 403,
          code: "plan_limit_reached",
          limit: "max_channels",
          max: 2
        })

        const list = yield* client.channels.list({ query: {} })
        expect(list.data.map((c) => c.id)).toEqual([second.id, first.id])
        const renamed = yield* client.channels.update({
          params: { id: first.id },
          payload: { name: "support" }
        })
        expect(renamed.name).toBe("support")
        expect((yield* client.channels.get({ params: { id: first.id } })).name).toBe("support")

        const deleted = yield* client.channels.delete({ params: { id: second.id } })
        expect(deleted.status).toBe("deleted")
        expect(yield* Effect.flip(client.channels.get({ params: { id: second.id } }))).toMatchObject({
          _tag: "NotFound",
          status: 404
        })
        yield* client.channels.create({ headers: {}, payload: {} })

        const audit = yield* client.audit.list({ query: { resource_type: "channel", resource_id: first.id } })
        expect(audit.data.map((e) => e.action)).toEqual(["channel.updated", "channel.created"])
      })
    )

    it.effect(
      "connect by QR: the QR as JSON, PNG and SVG, never in clear at rest or in the event log; the phone scans, channel.connected with the number",
      () =>
        Effect.gen(function* () {
          const { api, databaseUrl, whatsapp } = yield* TestGateway
          const { key, client } = yield* newCustomer(yield* TestGateway, { name: "Scanner" })
          const channel = yield* client.channels.create({ headers: {}, payload: {} })
          const params = { id: channel.id }
          const notPairing = yield* Effect.flip(client.channels.qr({ params }))
          expect(notPairing).toMatchObject({
            _tag: "InvalidState",
            status: 409,
            code: "invalid_state",
            current_status: "created"
          })

          const accepted = yield* client.channels.connect({ params, payload: { method: "qr" } })
          expect(accepted).toEqual({ status: "pairing" })

          const qr = yield* waitForQr(client, channel.id)
          expect(qr.qr).toMatch(/^2@memory-/)
          expect(Date.parse(qr.expires_at)).toBeGreaterThan(Date.now())

          // the image forms are chosen by Accept: raw requests, the typed client speaks JSON only
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
          expect(refusesPng.body.qr).toBe(qr.qr)
          const prefersSvg = yield* request(api, "GET", `/v1/channels/${channel.id}/qr`, {
            key,
            headers: { accept: "image/png;q=0.4, image/svg+xml;q=0.9, */*;q=0.1" }
          })
          expect(prefersSvg.headers.get("content-type")).toBe("image/svg+xml")

          expect(yield* whatsapp.pair(channel.id, "+15551234567")).toBe(true)
          const connected = yield* waitForStatus(client, channel.id, "connected")
          expect(connected.phone_number).toBe("+15551234567")
          expect(connected.last_connected_at).not.toBeNull()
          expect(yield* Effect.flip(client.channels.qr({ params }))).toMatchObject({
            _tag: "InvalidState",
            status: 409
          })

          const events = yield* client.events.list({ query: { channel_id: channel.id } })
          expect(events.data.map((e) => e.type)).toEqual(["channel.connected", "channel.qr"])
          const [connectedEvent, qrEvent] = events.data
          expect(connectedEvent!.data).toEqual({
            channel_id: channel.id,
            sequence: 2,
            phone_number: "+15551234567"
          })
          // the QR carries the device's adv secret: the event says when it expires, never what it is
          expect(qrEvent!.data).toEqual({ channel_id: channel.id, sequence: 1, expires_at: qr.expires_at })
          const listed = yield* request(api, "GET", `/v1/events?channel_id=${channel.id}`, { key })
          expect(listed.status).toBe(200)
          expect(listed.text).not.toContain(qr.qr)
          const { holding } = yield* columnsHolding(yield* sqlFor(databaseUrl), qr.qr)
          expect(holding).toEqual([])
          const onlyConnected = yield* client.events.list({
            query: { type: "channel.connected", channel_id: channel.id }
          })
          expect(onlyConnected.data).toHaveLength(1)
        }).pipe(Effect.scoped)
    )

    it.effect("logout unlinks the device and allows a new connect; restart reconnects without a new QR", () =>
      Effect.gen(function* () {
        const { whatsapp } = yield* TestGateway
        const { client } = yield* newCustomer(yield* TestGateway, { name: "Logger Outer" })
        const { id } = yield* client.channels.create({ headers: {}, payload: {} })
        yield* client.channels.connect({ params: { id }, payload: { method: "qr" } })
        yield* waitUntil(
          "the channel's connection is open",
          Effect.sync(() => whatsapp.isOpen(id))
        )
        yield* whatsapp.pair(id, "+15550001111")
        yield* waitForStatus(client, id, "connected")

        const connectsBefore = whatsapp.connects(id)
        yield* client.channels.restart({ params: { id } })
        yield* waitUntil(
          "the restart connects again",
          Effect.sync(() => whatsapp.connects(id) > connectsBefore)
        )
        yield* waitForStatus(client, id, "connected")

        const loggedOut = yield* client.channels.logout({ params: { id } })
        expect(loggedOut).toMatchObject({ status: "logged_out", status_reason: "logout_requested" })
        yield* waitUntil(
          "the logout closes the connection",
          Effect.sync(() => !whatsapp.isOpen(id))
        )
        expect(whatsapp.logouts(id)).toBe(1)
        expect(yield* whatsapp.isPaired(id)).toBe(false)

        const again = yield* Effect.flip(client.channels.logout({ params: { id } }))
        expect(again).toMatchObject({ _tag: "InvalidState", status: 409, current_status: "logged_out" })
        expect(yield* Effect.flip(client.channels.restart({ params: { id } }))).toMatchObject({
          _tag: "InvalidState",
          status: 409
        })
        const reconnect = yield* client.channels.connect({ params: { id }, payload: { method: "qr" } })
        expect(reconnect.status).toBe("pairing")
      })
    )

    it.effect("when there is no QR to scan, the problem says why, and its advice works", () =>
      Effect.gen(function* () {
        const { whatsapp } = yield* TestGateway
        const { client } = yield* newCustomer(yield* TestGateway, { name: "Advised" })
        const { id } = yield* client.channels.create({ headers: {}, payload: {} })
        const params = { id }
        const refusal = () =>
          Effect.map(Effect.flip(client.channels.qr({ params })), (problem) => {
            expect(problem).toMatchObject({ _tag: "InvalidState", status: 409 })
            return (problem as { readonly detail: string }).detail
          })

        // not connected yet: connect by QR, then the QR is here
        expect(yield* refusal()).toBe(
          `The channel is created, not pairing: POST /v1/channels/${id}/connect with {"method":"qr"}, then read its QR here`
        )
        yield* client.channels.connect({ params, payload: { method: "qr" } })
        yield* waitForQr(client, id)

        // connected: it needs no QR; to link another phone, log out and connect by QR
        yield* waitUntil(
          "the channel's connection is open",
          Effect.sync(() => whatsapp.isOpen(id))
        )
        yield* whatsapp.pair(id, "+15550002222")
        yield* waitForStatus(client, id, "connected")
        expect(yield* refusal()).toBe(
          `The channel is connected: it is linked to a phone and needs no QR; to link another phone, POST /v1/channels/${id}/logout, then connect with {"method":"qr"}`
        )
        const again = yield* Effect.flip(client.channels.connect({ params, payload: { method: "qr" } }))
        expect((again as { readonly detail: string }).detail).toBe(
          `The channel is connected: it is linked to a phone already; to link another, POST /v1/channels/${id}/logout, then connect again`
        )
        yield* client.channels.logout({ params })
        yield* client.channels.connect({
          params,
          payload: { method: "pairing_code", phone_number: "+15550002222" }
        })

        // pairing by code: the code is on the channel; to pair by QR instead, log out and connect by QR
        expect(yield* refusal()).toBe(
          `The channel pairs by code, not by QR: type its pairing_code (GET /v1/channels/${id}) into WhatsApp on the phone; to pair by QR instead, POST /v1/channels/${id}/logout, then connect with {"method":"qr"}`
        )
        yield* client.channels.logout({ params })
        yield* client.channels.connect({ params, payload: { method: "qr" } })
        yield* waitForQr(client, id)
      })
    )

    it.effect("connect refuses a state that does not allow it, and bad bodies name the field", () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const { key, client } = yield* newCustomer(yield* TestGateway, { name: "Picky" })
        const channel = yield* client.channels.create({ headers: {}, payload: {} })
        // bodies and ids the typed client would refuse to send: raw requests
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
        const params = { id: channel.id }
        const byCode = yield* client.channels.connect({
          params,
          payload: { method: "pairing_code", phone_number: "+15551234567" }
        })
        // the code to type into the phone, straight from connect, and on the channel while pairing
        expect(byCode).toEqual({ status: "pairing", pairing_code: "MEMO1234" })
        expect((yield* client.channels.get({ params })).pairing_code).toBe("MEMO1234")
        const twice = yield* Effect.flip(client.channels.connect({ params, payload: { method: "qr" } }))
        expect(twice).toMatchObject({
          _tag: "InvalidState",
          status: 409,
          code: "invalid_state",
          current_status: "pairing"
        })
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
        const unknown = ChannelId.make("ch_01m8ahr742skbetar1crg621tp")
        expect(yield* Effect.flip(client.channels.get({ params: { id: unknown } }))).toMatchObject({
          _tag: "NotFound",
          status: 404
        })
        expect((yield* request(api, "GET", "/v1/events?type=channel.exploded", { key })).status).toBe(400)
        expect((yield* request(api, "GET", "/v1/events?channel_id=nope", { key })).status).toBe(400)
      })
    )

    it.effect("a key bound to a channel sees and acts on that channel alone", () =>
      Effect.gen(function* () {
        const { api, whatsapp } = yield* TestGateway
        const { client } = yield* newCustomer(yield* TestGateway, { name: "Binder" })
        const mine = yield* client.channels.create({ headers: {}, payload: { name: "bound" } })
        const other = yield* client.channels.create({ headers: {}, payload: { name: "other" } })
        const bound = yield* client.apiKeys.create({
          headers: {},
          payload: { name: "bot", channel_id: mine.id }
        })
        expect(bound.channel_id).toBe(mine.id)
        const b = yield* apiClient(api, bound.key)

        expect((yield* b.me.get({})).channel_id).toBe(mine.id)
        expect((yield* b.channels.list({ query: {} })).data.map((c) => c.id)).toEqual([mine.id])
        const notFound = { _tag: "NotFound", status: 404 }
        const forbidden = { _tag: "Forbidden", status: 403 }
        expect(yield* Effect.flip(b.channels.get({ params: { id: other.id } }))).toMatchObject(notFound)
        expect(
          yield* Effect.flip(b.channels.connect({ params: { id: other.id }, payload: { method: "qr" } }))
        ).toMatchObject(notFound)
        expect(yield* Effect.flip(b.channels.create({ headers: {}, payload: {} }))).toMatchObject(forbidden)
        expect(yield* Effect.flip(b.channels.delete({ params: { id: mine.id } }))).toMatchObject(forbidden)
        expect(yield* Effect.flip(b.apiKeys.list({ query: {} }))).toMatchObject(forbidden)
        expect(yield* Effect.flip(b.apiKeys.create({ headers: {}, payload: {} }))).toMatchObject(forbidden)

        expect(
          (yield* b.channels.connect({ params: { id: mine.id }, payload: { method: "qr" } })).status
        ).toBe("pairing")
        yield* client.channels.connect({ params: { id: other.id }, payload: { method: "qr" } })
        yield* waitUntil(
          "both channels' connections are open",
          Effect.sync(() => whatsapp.isOpen(mine.id) && whatsapp.isOpen(other.id))
        )
        yield* waitFor(
          "both channels have an event",
          client.events.list({ query: {} }),
          (page) => page.data.length >= 2
        )
        const events = yield* b.events.list({ query: {} })
        expect(events.data.length).toBeGreaterThan(0)
        for (const event of events.data) expect(event.data.channel_id).toBe(mine.id)
        expect((yield* b.events.list({ query: { channel_id: other.id } })).data).toEqual([])
        const audit = yield* b.audit.list({ query: {} })
        expect(audit.data.map((e) => e.action)).toContain("channel.connect_requested")
        for (const entry of audit.data) expect(entry.resource_id).toBe(mine.id)

        const unknownChannel = yield* Effect.flip(
          client.apiKeys.create({
            headers: {},
            payload: { channel_id: ChannelId.make("ch_01m8ahr742skbetar1crg621tp") }
          })
        )
        expect(unknownChannel).toMatchObject({ _tag: "InvalidRequest", status: 400 })
        expect(unknownChannel._tag === "InvalidRequest" && unknownChannel.errors[0]?.path).toBe(
          "body.channel_id"
        )
      })
    )

    it.effect("logout then connect at once: the old device is unlinked and a new pairing starts", () =>
      Effect.gen(function* () {
        const { whatsapp } = yield* TestGateway
        const { client } = yield* newCustomer(yield* TestGateway, { name: "Hasty" })
        const { id } = yield* client.channels.create({ headers: {}, payload: {} })
        yield* client.channels.connect({ params: { id }, payload: { method: "qr" } })
        yield* waitUntil(
          "the channel's connection is open",
          Effect.sync(() => whatsapp.isOpen(id))
        )
        yield* whatsapp.pair(id, "+15554443333")
        yield* waitForStatus(client, id, "connected")
        const connects = whatsapp.connects(id)

        yield* client.channels.logout({ params: { id } })
        const again = yield* client.channels.connect({ params: { id }, payload: { method: "qr" } })
        expect(again.status).toBe("pairing")
        yield* waitUntil(
          "the old device is unlinked",
          Effect.sync(() => whatsapp.logouts(id) === 1)
        )
        yield* waitUntil(
          "a new pairing connects once",
          Effect.sync(() => whatsapp.connects(id) === connects + 1)
        )
        yield* waitForQr(client, id)
        expect(yield* whatsapp.isPaired(id)).toBe(false)
      })
    )

    it.effect(
      "a 515 after the scan is part of pairing: connecting, the used QR gone, no disconnect reported",
      () =>
        Effect.gen(function* () {
          const { whatsapp } = yield* TestGateway
          const { client } = yield* newCustomer(yield* TestGateway, { name: "Scanned" })
          const { id } = yield* client.channels.create({ headers: {}, payload: {} })
          yield* client.channels.connect({ params: { id }, payload: { method: "qr" } })
          yield* waitForQr(client, id)
          // the phone scanned: WhatsApp asks for a restart, and the first reconnect fails (a 1 s backoff)
          yield* whatsapp.failConnects(id, 1)
          yield* whatsapp.scan(id, "+15553332222")
          yield* waitForStatus(client, id, "connecting")
          const gone = yield* Effect.flip(client.channels.qr({ params: { id } }))
          expect(gone).toMatchObject({ _tag: "InvalidState", status: 409, current_status: "connecting" })
          yield* waitForStatus(client, id, "connected")
          // the event log tells the pairing as it was: a QR, then connected, with no disconnect between
          const events = yield* client.events.list({ query: { channel_id: id } })
          expect(events.data.map((e) => e.type).reverse()).toEqual(["channel.qr", "channel.connected"])
          const audit = yield* client.audit.list({ query: { resource_id: id } })
          const actions = audit.data.map((e) => e.action)
          expect(actions).toContain("channel.paired")
          expect(actions).not.toContain("channel.disconnected")
        })
    )

    it.effect("the channels gauge on /metrics follows the database, back to zero", () =>
      Effect.gen(function* () {
        const { admin, adminToken, databaseUrl } = yield* TestGateway
        const sql = yield* sqlFor(databaseUrl)
        const matches = Effect.gen(function* () {
          const metrics = yield* Effect.promise(() =>
            fetch(`${admin}/metrics`, { headers: { authorization: `Bearer ${adminToken}` } }).then((r) =>
              r.text()
            )
          )
          const counts = yield* sql<{ status: string; n: number }>`
          SELECT status, count(*)::int AS n FROM channels GROUP BY status`
          const byStatus = new Map(counts.map((row) => [row.status, row.n]))
          // deleted channels are not counted: however many there were, the gauge's query stays cheap
          const statuses = ChannelStatus.literals.filter((status) => status !== "deleted")
          return (
            statuses.every((status) =>
              metrics.includes(`whatisup_channels{status="${status}"} ${byStatus.get(status) ?? 0}\n`)
            ) && !metrics.includes(`whatisup_channels{status="deleted"}`)
          )
        }).pipe(Effect.orDie)
        yield* waitUntil("the gauge shows each status's count in the database", matches, {
          attempts: 100,
          everyMillis: 100
        })
      }).pipe(Effect.scoped)
    )
  }
)
