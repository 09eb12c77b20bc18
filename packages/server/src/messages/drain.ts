import { Clock, Duration, Effect, Schedule } from "effect"
import { randomInt } from "node:crypto"
import type { Fence, LeaseLost } from "../channels/leases.ts"
import type { OutboundContent, TransportConnection, TransportError } from "../channels/transport.ts"
import { GatewayConfigService } from "../config/config.ts"
import { MediaFetcher, type MediaKind } from "./mediaFetch.ts"
import { expiredDetail, Outbox, type OutboxItem } from "./outbox.ts"
import { OutboxSignal } from "./outboxSignal.ts"

/** How many queued messages one claim takes: sent one by one at the channel's pace. */
const claimSize = 20

/** How many read receipts one batch sends to WhatsApp. */
export const readReceiptBatch = 100

/** How long a round waits after WhatsApp did not take a message, before trying it again. */
const retryRoundAfter = "2 seconds"

/** How often a send, or a media upload, is tried in a row (before a pause, or before the upload fails). */
const sendAttempts = 5

/**
 * A token bucket: `perMinute` messages a minute on average, and a burst of a twelfth of that (five
 * seconds' worth) after a quiet spell.
 */
const makeBucket = (perMinute: number) => {
  const rate = perMinute / 60_000
  const capacity = Math.max(1, Math.ceil(perMinute / 12))
  let tokens = capacity
  let at = 0
  return {
    take: Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      tokens = at === 0 ? tokens : Math.min(capacity, tokens + (now - at) * rate)
      at = now
      if (tokens >= 1) {
        tokens -= 1
        return
      }
      const wait = Math.ceil((1 - tokens) / rate)
      tokens = 0
      at = now + wait
      yield* Effect.sleep(Duration.millis(wait))
    })
  }
}

const mediaKinds: ReadonlySet<string> = new Set(["image", "video", "audio", "document", "sticker"])

/** Why a message cannot be sent at all: it fails with this reason. */
interface Unsendable {
  readonly reason: string
  readonly detail: string
}

/**
 * One connection's drain of its channel's outbox: claims the queued messages in order, prepares each
 * once (its WhatsApp content stored before the first send, so every resend and retry receipt uses the
 * same), and sends them at the plan's pace with the id derived from the gateway's. The lease's local
 * deadline is checked again just before each send. Read receipts asked for go out too. It runs until
 * the connection's scope ends; a lost lease ends it.
 */
export const drainOutbox = (
  fence: Fence,
  connection: TransportConnection,
  holdsLease: () => boolean,
  perMinute: Effect.Effect<number>
) =>
  Effect.gen(function* () {
    const outbox = yield* Outbox
    const signal = yield* OutboxSignal
    const media = yield* MediaFetcher
    const config = yield* GatewayConfigService
    const maxAgeMs = Duration.toMillis(config.messageMaxAge)
    const token = randomInt(1, 2 ** 47)
    const woken = yield* signal.watch(fence.channelId)
    let rate = yield* perMinute
    let paceReadAt = yield* Clock.currentTimeMillis
    let bucket = makeBucket(rate)
    /**
     * The claim being worked through: `next` is the message at its turn, `sending` whether that one's
     * send has begun (it may have reached WhatsApp). What is left of it is given back if the drain
     * ends before it is done (see `giveBack`).
     */
    let outstanding: { readonly items: ReadonlyArray<OutboxItem>; next: number; sending: boolean } | undefined

    const retried = <A>(effect: Effect.Effect<A, TransportError>) =>
      effect.pipe(
        Effect.retry({
          schedule: Schedule.exponential("500 millis"),
          times: sendAttempts - 1,
          while: (error) => error.retryable
        }),
        Effect.result
      )

    /** The WhatsApp message to send: stored already, or built now (media fetched and uploaded) and stored. */
    const prepare = (item: OutboxItem) =>
      Effect.gen(function* () {
        if (item.prepared !== null) return item.prepared
        const content = yield* contentOf(item)
        if ("reason" in content) return content
        const built = yield* retried(connection.prepare(item.chat, content))
        if (built._tag === "Failure") {
          return {
            reason: "media_upload_failed",
            detail: `WhatsApp did not take the media: ${built.failure.reason}`
          }
        }
        const stored = yield* outbox.prepared(fence, [{ id: item.id, content: built.success }])
        return stored.get(item.id) ?? built.success
      })

    /**
     * The claimed messages without media, prepared together and stored in one statement (not one
     * write per message before its send). Media are fetched and uploaded one by one at their turn;
     * what cannot be built here is left to `prepare`, which fails it with its reason.
     */
    const prepareAhead = (items: ReadonlyArray<OutboxItem>) =>
      Effect.gen(function* () {
        const built: Array<{ readonly id: string; readonly content: Uint8Array }> = []
        for (const item of items) {
          if (item.prepared !== null || mediaKinds.has(item.type)) continue
          const content = yield* contentOf(item)
          if ("reason" in content) continue
          const message = yield* Effect.result(connection.prepare(item.chat, content))
          if (message._tag === "Success") built.push({ id: item.id, content: message.success })
        }
        const stored = yield* outbox.prepared(fence, built)
        return items.map((item) => {
          const content = stored.get(item.id)
          return content === undefined ? item : { ...item, prepared: content }
        })
      })

    const contentOf = (item: OutboxItem): Effect.Effect<OutboundContent | Unsendable> =>
      Effect.gen(function* () {
        const c = item.content
        const quoted =
          item.type === "reaction" || item.reference === null
            ? {}
            : {
                quoted: {
                  key: {
                    id: item.reference.whatsappId,
                    fromMe: item.reference.fromMe,
                    chat: item.reference.chat
                  },
                  content: item.reference.content ?? undefined
                }
              }
        if (mediaKinds.has(item.type)) {
          const fetched = yield* Effect.result(media.fetch(String(c.link), item.type as MediaKind))
          if (fetched._tag === "Failure")
            return { reason: fetched.failure.reason, detail: fetched.failure.detail }
          const file = { bytes: fetched.success.bytes, mimetype: fetched.success.mimetype }
          switch (item.type) {
            case "audio":
              return { type: "audio", ...file, voice: c.voice === true, ...quoted }
            case "document":
              return {
                type: "document",
                ...file,
                ...(typeof c.caption === "string" ? { caption: c.caption } : {}),
                ...(typeof c.filename === "string" ? { filename: c.filename } : {}),
                ...quoted
              }
            default:
              return {
                type: item.type as "image" | "video" | "sticker",
                ...file,
                ...(typeof c.caption === "string" ? { caption: c.caption } : {}),
                ...quoted
              }
          }
        }
        switch (item.type) {
          case "text":
            return { type: "text", body: String(c.body), previewUrl: c.preview_url === true, ...quoted }
          case "location":
            return {
              type: "location",
              latitude: Number(c.latitude),
              longitude: Number(c.longitude),
              ...(typeof c.name === "string" ? { name: c.name } : {}),
              ...(typeof c.address === "string" ? { address: c.address } : {}),
              ...quoted
            }
          case "reaction":
            if (item.reference === null) {
              return { reason: "invalid_reference", detail: "The message reacted to is gone" }
            }
            return {
              type: "reaction",
              target: {
                id: item.reference.whatsappId,
                fromMe: item.reference.fromMe,
                chat: item.reference.chat
              },
              emoji: String(c.emoji ?? "")
            }
          default:
            return {
              reason: "unsupported_type",
              detail: `The gateway cannot send a message of type ${item.type}`
            }
        }
      })

    /**
     * Fails the message when it is too old to send, unless an earlier claim may have sent it. Only
     * the drain that claimed a message expires it, so a message it sends is never also failed.
     */
    const expired = (item: OutboxItem) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        if (item.possiblySent || now - item.createdAt.getTime() <= maxAgeMs) return false
        yield* outbox.fail(fence, [
          {
            id: item.id,
            status: "failed",
            reason: "expired",
            detail: expiredDetail(config.messageMaxAge)
          }
        ])
        return true
      })

    /**
     * Sends one claimed message, or fails it: `done` when it went (or failed for good), `stop` when
     * the lease may have lapsed (nothing more is sent), `later` when WhatsApp did not take it.
     */
    const sendOne = (item: OutboxItem): Effect.Effect<"done" | "stop" | "later", LeaseLost> =>
      Effect.gen(function* () {
        if (yield* expired(item)) return "done"
        yield* bucket.take
        const prepared = yield* prepare(item)
        if ("reason" in prepared) {
          yield* outbox.fail(fence, [{ id: item.id, status: "failed", ...prepared }])
          return "done"
        }
        // the pace and the media may have taken long
        if (yield* expired(item)) return "done"
        if (!holdsLease()) return "stop"
        if (outstanding !== undefined) outstanding.sending = true
        const sent = yield* retried(
          connection.send({ id: item.whatsappId, to: item.chat, content: prepared })
        )
        if (sent._tag === "Failure" && !sent.failure.retryable) {
          yield* outbox.fail(fence, [
            {
              id: item.id,
              status: "failed",
              reason: "whatsapp_error",
              detail: `The message could not be sent: ${sent.failure.reason}`
            }
          ])
          return "done"
        }
        if (sent._tag === "Failure") {
          yield* Effect.logWarning("a message could not be sent; it goes first again shortly").pipe(
            Effect.annotateLogs({ message_id: item.id, reason: sent.failure.reason })
          )
          return "later"
        }
        return "done"
      })

    /**
     * Gives a claim back from its `at`th message on: the one at `at` if its send was `tried`, and any
     * an earlier claim may have sent, stay marked possibly sent (they may have reached WhatsApp); the
     * others are unclaimed. The next claim takes them all again, in order.
     */
    const releaseFrom = (items: ReadonlyArray<OutboxItem>, at: number, tried: boolean) => {
      const rest = items.slice(at)
      const mayHaveGone = (item: OutboxItem, i: number) => (tried && i === 0) || item.possiblySent
      return outbox.release(
        fence,
        rest.filter(mayHaveGone).map((item) => item.id),
        rest.filter((item, i) => !mayHaveGone(item, i)).map((item) => item.id)
      )
    }

    /**
     * One round: claims and sends until the queue is empty. A message WhatsApp did not take gives its
     * claim back, with those claimed after it, so the next round starts from it again, in order.
     */
    const round = Effect.gen(function* () {
      for (;;) {
        const claimed = yield* outbox.claim(fence, token, claimSize)
        if (claimed.length === 0) return "drained" as const
        const claim = { items: claimed, next: 0, sending: false }
        outstanding = claim
        const items = yield* prepareAhead(claimed)
        for (const [i, item] of items.entries()) {
          claim.next = i
          claim.sending = false
          const outcome = yield* sendOne(item)
          if (outcome === "stop") return "stop" as const
          if (outcome === "later") {
            outstanding = undefined
            yield* releaseFrom(items, i, true)
            return "later" as const
          }
        }
        outstanding = undefined
      }
    })

    /**
     * When the drain ends inside a claim (the connection closed, the actor stopped), the messages of
     * it never handed to WhatsApp are given back, unclaimed: the sweep may then expire them, where a
     * claimed one counts as possibly sent and is never expired. The one whose send had begun, and one
     * an earlier claim may have sent, stay possibly sent. Only while the lease is this drain's (after
     * the socket has closed: see the actor), and not waited on for long: a database that hangs leaves
     * them claimed, to be sent again.
     */
    const giveBack = Effect.suspend(() => {
      const claim = outstanding
      outstanding = undefined
      if (claim === undefined || !holdsLease() || claim.next >= claim.items.length) return Effect.void
      return releaseFrom(claim.items, claim.next, claim.sending).pipe(
        Effect.timeout("5 seconds"),
        Effect.ignoreCause
      )
    })

    /** Sends a batch of the read receipts asked for; a full one wakes the drain again for the rest. */
    const readReceipts = Effect.gen(function* () {
      const receipts = yield* outbox.readReceipts(fence, readReceiptBatch)
      if (receipts.length === 0 || !holdsLease()) return
      const marked = yield* retried(
        connection.markRead(
          receipts.map((receipt) => ({ id: receipt.whatsappId, fromMe: false, chat: receipt.chat }))
        )
      )
      if (marked._tag === "Success") {
        yield* outbox.readReceiptsSent(
          fence,
          receipts.map((receipt) => receipt.id)
        )
        // more may be waiting: the next round takes them, after any message queued meanwhile
        if (receipts.length === readReceiptBatch) signal.wake(fence.channelId)
      }
    })

    for (;;) {
      yield* woken
      // the plan's pace, read again once a minute at most: not a query for every wake
      const now = yield* Clock.currentTimeMillis
      if (now - paceReadAt >= 60_000) {
        paceReadAt = now
        const pace = yield* perMinute
        if (pace !== rate) {
          rate = pace
          bucket = makeBucket(rate)
        }
      }
      const outcome = yield* Effect.ensuring(round, giveBack)
      if (outcome === "stop") return
      if (outcome === "later") {
        yield* Effect.sleep(retryRoundAfter)
        signal.wake(fence.channelId)
      }
      yield* readReceipts
    }
  })
