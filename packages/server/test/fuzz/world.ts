import { proto } from "@whiskeysockets/baileys"
import { Effect } from "effect"
import { newCustomer } from "../support/admin.ts"
import { waitForStatus } from "../support/api.ts"
import type { RunningGateway } from "../support/gateway.ts"
import { waitFor, waitUntil } from "../support/waits.ts"

/** Nothing listens there; the fuzz test's gateway allows 127.0.0.1 as a webhook destination. */
export const deadEndUrl = "http://127.0.0.1:9/fuzz"

const text = { to: "+15557654321", type: "text", text: { body: "fuzz" } } as const

/** One customer's resources, by id kind (`ch`, `msg`, `wh`, `dlv`, `key`, `evt`, `cus`, `aud`). */
export type Ids = Readonly<Record<string, ReadonlyArray<string>>>

/** A key, and the ids an answer to it must never show (they are other customers', or beyond its channel). */
export interface Party {
  readonly key: string
  readonly mayNotSee: ReadonlyArray<string>
}

/**
 * The customer who fuzzes (with a key of the whole customer, a key bound to its idle channel, a revoked
 * key), the customer whose rows must stay untouched, and a third customer whose key tries the first's ids.
 */
export interface World {
  readonly own: Ids
  readonly other: Ids
  readonly keys: Readonly<Record<"own" | "bound" | "revoked" | "intruder" | "tampered", string>>
  /** The keys that authenticate, with what each may not see. */
  readonly parties: ReadonlyArray<Party>
  /** Every id of every customer here: what an unauthenticated answer may not show. */
  readonly allIds: ReadonlyArray<string>
  /** The ids of the fuzzing customers made before this one: other customers now, shown to nobody. */
  readonly retired: ReadonlyArray<string>
}

const inboundText = (whatsappId: string) => ({
  whatsappId,
  from: "+15550009002",
  chat: "+15550009002",
  timestamp: new Date(),
  pushName: "Fuzz",
  content: proto.Message.encode({ conversation: "hello" }).finish(),
  type: "notify" as const
})

const roomyPlan = { max_channels: 10_000, max_api_keys: 10_000, max_webhook_endpoints: 10_000 }

/**
 * The fuzzing customer's resources, made through the API: an idle channel with a queued message and a
 * bound key, a connected channel with an inbound message, webhook endpoints with a delivery. Made again
 * whenever the fuzzer has deleted, revoked or logged out one of them.
 */
export const fuzzingCustomer = (gateway: RunningGateway, round: number) =>
  Effect.gen(function* () {
    const owner = yield* newCustomer(gateway, { name: `Fuzzer ${round}`, plan: roomyPlan })
    const { client } = owner
    const idle = yield* client.channels.create({ headers: {}, payload: { name: "idle" } })
    const live = yield* client.channels.create({ headers: {}, payload: { name: "live" } })
    yield* client.channels.connect({ params: { id: live.id }, payload: { method: "qr" } })
    yield* waitUntil(
      `channel ${live.id} has a connection`,
      Effect.sync(() => gateway.whatsapp.isOpen(live.id))
    )
    yield* gateway.whatsapp.pair(live.id, "+15550001111")
    yield* waitForStatus(client, live.id, "connected")
    yield* gateway.whatsapp.receive(live.id, [inboundText(`3EB0FUZZ${round}`)])
    const inbound = yield* waitFor(
      "the inbound message is stored",
      client.messages.list({ params: { id: live.id }, query: { direction: "inbound" } }),
      (page) => page.data.length > 0
    )
    const outbound = yield* client.messages.send({ params: { id: idle.id }, headers: {}, payload: text })
    const sentLive = yield* client.messages.send({ params: { id: live.id }, headers: {}, payload: text })
    const spare = yield* client.apiKeys.create({ headers: {}, payload: { name: "spare" } })
    const bound = yield* client.apiKeys.create({
      headers: {},
      payload: { name: "bound", channel_id: idle.id }
    })
    const revoked = yield* client.apiKeys.create({ headers: {}, payload: { name: "revoked" } })
    yield* client.apiKeys.revoke({ params: { id: revoked.id } })
    const endpoint = yield* client.webhooks.create({ headers: {}, payload: { url: deadEndUrl } })
    const ofIdle = yield* client.webhooks.createForChannel({
      params: { id: idle.id },
      headers: {},
      payload: { url: deadEndUrl }
    })
    const delivery = yield* client.webhooks.test({ params: { id: endpoint.id } })
    const audit = yield* client.audit.list({ query: {} })
    const liveIds = [live.id, inbound.data[0]!.id, sentLive.id]
    const wideIds = [endpoint.id, delivery.id, delivery.event_id]
    const ids: Ids = {
      ch: [idle.id, live.id],
      msg: [outbound.id, inbound.data[0]!.id, sentLive.id],
      wh: [endpoint.id, ofIdle.id],
      dlv: [delivery.id],
      key: [spare.id, bound.id, owner.keyId, revoked.id],
      evt: [delivery.event_id],
      cus: [owner.customerId],
      aud: audit.data.slice(0, 2).map((row) => row.id)
    }
    return {
      ids,
      key: owner.key,
      bound: bound.key,
      revoked: revoked.key,
      boundSeesNot: [...liveIds, ...wideIds]
    }
  })

export type FuzzingCustomer = Effect.Success<ReturnType<typeof fuzzingCustomer>>

/**
 * The customer whose rows the fuzzer must never touch: a channel with a queued message, a key, and an
 * endpoint whose test delivery failed and which was then disabled, so nothing of theirs moves by itself.
 */
export const bystander = (gateway: RunningGateway) =>
  Effect.gen(function* () {
    const owner = yield* newCustomer(gateway, { name: "Bystander", plan: roomyPlan })
    const { client } = owner
    const channel = yield* client.channels.create({ headers: {}, payload: { name: "bystander" } })
    const message = yield* client.messages.send({ params: { id: channel.id }, headers: {}, payload: text })
    const spare = yield* client.apiKeys.create({ headers: {}, payload: { name: "spare" } })
    const endpoint = yield* client.webhooks.create({ headers: {}, payload: { url: deadEndUrl } })
    const ofChannel = yield* client.webhooks.createForChannel({
      params: { id: channel.id },
      headers: {},
      payload: { url: deadEndUrl }
    })
    const delivery = yield* client.webhooks.test({ params: { id: endpoint.id } })
    yield* waitFor(
      "the bystander's test delivery was attempted",
      client.webhooks.delivery({ params: { id: delivery.id } }),
      (seen) => seen.attempts > 0
    )
    yield* client.webhooks.update({ params: { id: endpoint.id }, payload: { enabled: false } })
    yield* client.webhooks.update({ params: { id: ofChannel.id }, payload: { enabled: false } })
    yield* waitFor(
      "the bystander's delivery settled",
      client.webhooks.delivery({ params: { id: delivery.id } }),
      (seen) => seen.status !== "pending"
    )
    const audit = yield* client.audit.list({ query: {} })
    const ids: Ids = {
      aud: audit.data.slice(0, 2).map((row) => row.id),
      ch: [channel.id],
      msg: [message.id],
      wh: [endpoint.id, ofChannel.id],
      dlv: [delivery.id],
      key: [owner.keyId, spare.id],
      evt: [delivery.event_id],
      cus: [owner.customerId]
    }
    return { ids, key: owner.key, customerId: owner.customerId }
  })

export type Bystander = Effect.Success<ReturnType<typeof bystander>>

export const worldOf = (
  fuzzer: FuzzingCustomer,
  other: Bystander,
  intruder: { readonly key: string; readonly customerId: string },
  retired: ReadonlyArray<string> = []
): World => {
  const ownIds = Object.values(fuzzer.ids).flat()
  const otherIds = Object.values(other.ids).flat()
  return {
    own: fuzzer.ids,
    other: other.ids,
    keys: {
      own: fuzzer.key,
      bound: fuzzer.bound,
      revoked: fuzzer.revoked,
      intruder: intruder.key,
      // the right shape, a key nobody holds
      tampered: `${fuzzer.key.slice(0, -1)}${fuzzer.key.endsWith("A") ? "B" : "A"}`
    },
    parties: [
      { key: fuzzer.key, mayNotSee: [...otherIds, intruder.customerId, ...retired] },
      {
        key: fuzzer.bound,
        mayNotSee: [...otherIds, intruder.customerId, ...retired, ...fuzzer.boundSeesNot]
      },
      { key: intruder.key, mayNotSee: [...ownIds, ...otherIds, ...retired] }
    ],
    allIds: [...ownIds, ...otherIds, intruder.customerId, ...retired],
    retired
  }
}

const unknownTails = [
  "00000000000000000000000000",
  "zzzzzzzzzzzzzzzzzzzzzzzzzz",
  "01m8mdm38wdvrz8hr11e5wqsdm"
]

/**
 * Replaces the placeholders of a generated request with the world's ids and keys: `{{own:ch:0}}`,
 * `{{other:msg:1}}`, `{{unknown:wh:2}}`, `{{key:bound}}`, and `{{cursor:own:ch:1}}` for a page cursor
 * after that id (a cursor is the base64url of the last id of a page).
 */
export const resolve = (world: World, text: string) =>
  text.replace(
    /\{\{(cursor:)?(own|other|unknown|key):(\w+)(?::(\d+))?\}\}/g,
    (_, cursor: string | undefined, owner: string, name: string, index: string | undefined) => {
      const i = Number(index ?? 0)
      if (owner === "key") return world.keys[name as keyof World["keys"]]
      const pool = owner === "own" ? world.own[name] : owner === "other" ? world.other[name] : undefined
      const id =
        pool === undefined || pool.length === 0
          ? `${name}_${unknownTails[i % unknownTails.length]}`
          : pool[i % pool.length]!
      return cursor === undefined ? id : Buffer.from(id).toString("base64url")
    }
  )
