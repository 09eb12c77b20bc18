import { describe, expect, it } from "@effect/vitest"
import type { Message } from "@whatisup/domain"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as net from "node:net"
import { newCustomer } from "./support/admin.ts"
import { type ApiClient } from "./support/api.ts"
import { baileysGateway, deliverTo, pairedChannel, trustMediaHost } from "./support/simulator.ts"
import { request } from "./support/http.ts"
import { waitFor } from "./support/waits.ts"

const PHONE = "15551250001"
const CONTACT = "15557790001"

/** A gateway on real Baileys and the simulator, a customer, and a paired channel. */
const connected = (extra: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const { sim, gateway } = yield* baileysGateway({ LOG_LEVEL: "warn", ...extra }).pipe(
      Effect.tap(({ sim }) => trustMediaHost(sim))
    )
    const customer = yield* newCustomer(gateway, { plan: { messages_per_minute: 100_000 } })
    const channel = yield* pairedChannel(customer.client, sim, PHONE)
    return { sim, gateway, customer, client: customer.client, channel }
  })

/** The channel's inbound messages once every one of `whatsappIds` is stored, by WhatsApp id. */
const storedInbound = (
  client: ApiClient,
  channel: Message["channel_id"],
  whatsappIds: ReadonlyArray<string>
) =>
  waitFor(
    "the inbound messages stored",
    client.messages.list({ params: { id: channel }, query: { direction: "inbound", limit: 100 } }),
    (page) => whatsappIds.every((id) => page.data.some((message) => message.whatsapp_id === id)),
    { attempts: 600, everyMillis: 50 }
  ).pipe(Effect.map((page) => new Map(page.data.map((message) => [message.whatsapp_id, message]))))

/** A TCP listener that counts the connections made to it, for the scope's lifetime. */
const listener = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{ port: number; connections: () => number; server: net.Server }>((resolve) => {
        let connections = 0
        const server = net.createServer((socket) => {
          connections++
          socket.destroy()
        })
        server.listen(0, "127.0.0.1", () =>
          resolve({
            port: (server.address() as net.AddressInfo).port,
            connections: () => connections,
            server
          })
        )
      })
  ),
  ({ server }) => Effect.promise(() => new Promise((resolve) => server.close(resolve)))
)

describe("messages from hostile senders and callers", () => {
  it.live(
    "a contact's message holding NUL characters is stored with them replaced, acknowledged, and the channel stays connected",
    () =>
      Effect.gen(function* () {
        const { sim, client, channel } = yield* connected()
        const logins = sim.connectionHistory(PHONE).length
        const poison = yield* deliverTo(sim, PHONE, {
          from: CONTACT,
          message: { conversation: "a\u0000b\u0000c" }
        })
        // the sender chooses the message's id too
        const named = yield* deliverTo(sim, PHONE, {
          from: CONTACT,
          id: "3EB0\u0000NAMED",
          message: { extendedTextMessage: { text: "quoting", contextInfo: { stanzaId: "\u0000" } } }
        })
        const next = yield* deliverTo(sim, PHONE, { from: CONTACT, message: { conversation: "and then" } })
        const stored = yield* storedInbound(client, channel, [poison.id, "3EB0\ufffdNAMED", next.id])
        expect(stored.get(poison.id)).toMatchObject({ type: "text", text: { body: "a\ufffdb\ufffdc" } })
        expect(named.id).toBe("3EB0\u0000NAMED")
        expect(stored.get("3EB0\ufffdNAMED")).toMatchObject({
          context: { whatsapp_id: "\ufffd", message_id: null }
        })
        expect(stored.get(next.id)).toMatchObject({ type: "text", text: { body: "and then" } })
        yield* waitFor(
          "WhatsApp holds nothing unacknowledged",
          Effect.sync(() => sim.pending(PHONE)),
          (p) => p.length === 0,
          {
            attempts: 400,
            everyMillis: 50
          }
        )
        // stored at the first delivery: no reconnect for WhatsApp to deliver it again
        expect(sim.connectionHistory(PHONE)).toHaveLength(logins)
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "the media path a sender wrote cannot send the download to another host or port",
    () =>
      Effect.gen(function* () {
        const elsewhere = yield* listener
        // WhatsApp's media host as production names it: a host without a port
        const { sim, client, channel, customer, gateway } = yield* connected({
          WHATISUP_WA_MEDIA_HOST: "127.0.0.1"
        })
        const image = (directPath: string) =>
          deliverTo(sim, PHONE, {
            from: CONTACT,
            message: {
              imageMessage: {
                directPath,
                mediaKey: crypto.randomBytes(32),
                mimetype: "image/png",
                fileLength: 10
              }
            }
          })
        const toPort = yield* image(`:${elsewhere.port}/v/t62.7118-24/steal.enc`)
        const stored = yield* storedInbound(client, channel, [toPort.id])
        const response = yield* request(
          gateway.api,
          "GET",
          `/v1/messages/${stored.get(toPort.id)!.id}/media`,
          {
            key: customer.key
          }
        )
        expect(response.status).toBe(409)
        expect(elsewhere.connections()).toBe(0)
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "a media type or file name a sender wrote that no header can carry is not a header: the file downloads as octet-stream",
    () =>
      Effect.gen(function* () {
        const { sim, client, channel, customer, gateway } = yield* connected()
        const bytes = crypto.randomBytes(2000)
        const document = (mimetype: string, fileName: string) =>
          deliverTo(sim, PHONE, { from: CONTACT, media: { kind: "document", bytes, mimetype, fileName } })
        const injected = yield* document("text/plain\r\nset-cookie: session=stolen", "a.pdf")
        const wide = yield* document("image/😀", "😀\r\n.pdf")
        const stored = yield* storedInbound(client, channel, [injected.id, wide.id])
        for (const sent of [injected, wide]) {
          const response = yield* Effect.promise(() =>
            fetch(`${gateway.api}/v1/messages/${stored.get(sent.id)!.id}/media`, {
              headers: { authorization: `Bearer ${customer.key}` }
            })
          )
          expect(response.status).toBe(200)
          expect(response.headers.get("content-type")).toBe("application/octet-stream")
          expect(response.headers.get("set-cookie")).toBeNull()
          expect(Buffer.from(yield* Effect.promise(() => response.arrayBuffer())).equals(bytes)).toBe(true)
        }
        const named = yield* request(gateway.api, "GET", `/v1/messages/${stored.get(wide.id)!.id}/media`, {
          key: customer.key
        })
        expect(named.headers.get("content-disposition")).toBe(
          `attachment; filename="___.pdf"; filename*=UTF-8''${encodeURIComponent("😀\r\n.pdf")}`
        )
      }).pipe(Effect.scoped),
    180_000
  )
})
