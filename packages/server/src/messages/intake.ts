import {
  type ApiKeyId,
  type ChannelId,
  type CustomerId,
  IdempotencyKeyInUse,
  IdempotencyKeyReused,
  Message,
  type MessageId,
  type SendMessage
} from "@whatisup/domain"
import { Context, Deferred, Effect, Exit, Layer, Queue, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { ChannelNotFound, ChannelStateConflict } from "../channels/errors.ts"
import { KeyRing, placeIn } from "../crypto/keyRing.ts"
import { newId } from "../db/ids.ts"
import { transaction } from "../db/transaction.ts"
import { requestHashOf, storedAnswers } from "../idempotency/answers.ts"
import { ReferencedMessageNotFound } from "./errors.ts"
import { outboxChannel } from "./outboxSignal.ts"
import { renderMessage } from "./rows.ts"
import { outboundWhatsAppId } from "./whatsappIds.ts"

/** One send as the API received it, validated; its media links were vetted already. */
export interface SendRequest {
  readonly customerId: CustomerId
  readonly apiKeyId: ApiKeyId
  /** The channel a bound key may use, or null for a key of the whole customer. */
  readonly onlyChannel: ChannelId | null
  readonly channelId: ChannelId
  readonly message: SendMessage
  readonly idempotencyKey: string | undefined
}

export type SendError =
  | ChannelNotFound
  | ChannelStateConflict
  | ReferencedMessageNotFound
  | IdempotencyKeyInUse
  | IdempotencyKeyReused

/** A logged-out channel takes no sends: the phone that links it next may be another number's. */
const refusesSends = (status: string) => status === "logged_out"

const loggedOut = (channelId: ChannelId) =>
  new ChannelStateConflict({ channelId, status: "logged_out", action: "send" })

export interface Accepted {
  readonly message: Message
  /** The answer is the stored one of an earlier request with the same Idempotency-Key. */
  readonly replayed: boolean
}

/** How many sends one transaction takes at most. */
export const maxBatch = 256

/** A send's row as the common path writes it. */
interface PlainRow {
  readonly id: MessageId
  readonly customer_id: CustomerId
  readonly channel_id: ChannelId
  readonly chat: string
  readonly type: SendMessage["type"]
  readonly content: Record<string, unknown>
  readonly whatsapp_id: string
}

/** Transactions in flight at once: while one commits, the next batch gathers. */
export const workers = 2

interface Pending {
  readonly request: SendRequest
  readonly answer: Deferred.Deferred<Accepted, SendError>
  /** `apiKeyId \n key`, for requests with an Idempotency-Key. */
  readonly keyed: string | undefined
}

const MessageAnswer = Schema.fromJsonString(Message)
const encodeAnswer = Schema.encodeSync(MessageAnswer)
const decodeAnswer = Schema.decodeUnknownEffect(MessageAnswer)

/** The msg_ ids a send names, with the field that names each. */
const referencesOf = (message: SendMessage): ReadonlyArray<{ path: string; id: MessageId }> => [
  ...(message.context === undefined
    ? []
    : [{ path: "body.context.message_id", id: message.context.message_id }]),
  ...(message.type === "reaction"
    ? [{ path: "body.reaction.message_id", id: message.reaction.message_id }]
    : [])
]

/** What a send stores: its type's object, as the API shows it back. */
const contentOf = (message: SendMessage): unknown =>
  (message as unknown as Record<string, unknown>)[message.type]

const routeOf = (channelId: ChannelId) => `POST /v1/channels/${channelId}/messages`

/**
 * The accept path: sends arriving together are written together, and each is answered once its
 * batch has committed: the durability of a transaction per request at a fraction of the commits. The
 * common sends of a batch (no Idempotency-Key, no message referenced) are one multi-row statement; the
 * others one transaction of multi-row inserts (the messages, their first status, their
 * Idempotency-Key answers). An Idempotency-Key is in flight from its request's arrival to its batch's
 * commit: a second request with it meanwhile is refused (409) here, or by the transaction-scoped
 * advisory lock when it reaches another process.
 */
export class MessageIntake extends Context.Service<
  MessageIntake,
  { readonly send: (request: SendRequest) => Effect.Effect<Accepted, SendError> }
>()("whatisup/MessageIntake") {}

export const layerMessageIntake = Layer.effect(
  MessageIntake,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const keyRing = yield* KeyRing
    const inTransaction = transaction(sql)
    const queue = yield* Queue.unbounded<Pending>()
    const keysInFlight = new Set<string>()

    /** Decides every send of the batch inside one transaction; the answers settle after it commits. */
    const write = (batch: ReadonlyArray<Pending>) =>
      Effect.gen(function* () {
        const outcomes = new Map<Pending, Exit.Exit<Accepted, SendError>>()
        const refuse = (pending: Pending, error: SendError) => outcomes.set(pending, Exit.fail(error))

        const channelIds = [...new Set(batch.map((pending) => pending.request.channelId))]
        // share-locked: a delete or logout (which fails what is queued) waits for these sends to commit;
        // in id order, as every writer that locks several channels takes them (see `writePlain`)
        const channels = new Map(
          (yield* sql<{
            id: string
            customer_id: string
            phone_number: string | null
            status: string
            now: Date
          }>`
            SELECT id, customer_id, phone_number, status, now() AS now FROM channels
            WHERE id IN ${sql.in(channelIds)} AND status <> 'deleted' ORDER BY id FOR SHARE`).map((row) => [
            row.id,
            row
          ])
        )
        const referencedIds = [
          ...new Set(batch.flatMap((pending) => referencesOf(pending.request.message).map((r) => r.id)))
        ]
        const referenced =
          referencedIds.length === 0
            ? new Map<string, { channel_id: string; whatsapp_id: string }>()
            : new Map(
                (yield* sql<{ id: string; channel_id: string; whatsapp_id: string }>`
                  SELECT id, channel_id, whatsapp_id FROM messages WHERE id IN ${sql.in(referencedIds)}`).map(
                  (row) => [row.id, row]
                )
              )

        // a key bound to another channel finds no such channel, whatever its Idempotency-Key
        const permitted: Array<Pending> = []
        for (const pending of batch) {
          const { request } = pending
          if (request.onlyChannel !== null && request.onlyChannel !== request.channelId) {
            refuse(pending, new ChannelNotFound({ channelId: request.channelId }))
          } else permitted.push(pending)
        }

        // an Idempotency-Key: locked for the transaction, then its stored answer read in a later
        // snapshot; a stored answer is replayed whatever became of the channel since (deleted, logged out)
        const keyed = permitted.filter((pending) => pending.request.idempotencyKey !== undefined)
        const unanswered = permitted.filter((pending) => pending.request.idempotencyKey === undefined)
        if (keyed.length > 0) {
          const keys = JSON.stringify(
            keyed.map((pending, i) => ({ i, a: pending.request.apiKeyId, k: pending.request.idempotencyKey }))
          )
          const locks = yield* sql<{ i: number; locked: boolean }>`
            SELECT w.i, pg_try_advisory_xact_lock(hashtext(w.a), hashtext(w.k)) AS locked
            FROM json_to_recordset(${keys}::json) AS w(i int, a text, k text)`
          const stored = new Map(
            (yield* sql<{
              api_key_id: string
              key: string
              request_hash: string
              response_ciphertext: string
            }>`
              SELECT s.api_key_id, s.key, s.request_hash, s.response_ciphertext
              FROM json_to_recordset(${keys}::json) AS w(i int, a text, k text)
              JOIN idempotency_keys s ON s.api_key_id = w.a AND s.key = w.k
              WHERE s.created_at > now() - interval '24 hours'`).map((row) => [
              `${row.api_key_id}\n${row.key}`,
              row
            ])
          )
          for (const lock of locks) {
            const pending = keyed[lock.i]!
            const { request } = pending
            if (!lock.locked) {
              refuse(
                pending,
                new IdempotencyKeyInUse({
                  detail: "The first request with this Idempotency-Key has not finished; retry later"
                })
              )
              continue
            }
            const first = stored.get(pending.keyed!)
            if (first === undefined) {
              unanswered.push(pending)
            } else if (first.request_hash !== requestHashOf([routeOf(request.channelId), request.message])) {
              refuse(
                pending,
                new IdempotencyKeyReused({
                  detail: "This Idempotency-Key was first used with a different request"
                })
              )
            } else {
              const place = placeIn(storedAnswers, [request.apiKeyId, request.idempotencyKey!])
              const body = yield* keyRing.decrypt(first.response_ciphertext, place).pipe(Effect.orDie)
              const message = yield* decodeAnswer(body).pipe(Effect.orDie)
              outcomes.set(pending, Exit.succeed({ message, replayed: true }))
            }
          }
        }

        const toInsert: Array<Pending> = []
        for (const pending of unanswered) {
          const { request } = pending
          const channel = channels.get(request.channelId)
          if (channel === undefined || channel.customer_id !== request.customerId) {
            refuse(pending, new ChannelNotFound({ channelId: request.channelId }))
            continue
          }
          if (refusesSends(channel.status)) {
            refuse(pending, loggedOut(request.channelId))
            continue
          }
          const missing = referencesOf(request.message).find(
            (reference) => referenced.get(reference.id)?.channel_id !== request.channelId
          )
          if (missing !== undefined) {
            refuse(pending, new ReferencedMessageNotFound({ path: missing.path, messageId: missing.id }))
            continue
          }
          toInsert.push(pending)
        }

        if (toInsert.length > 0) {
          const rows: Array<Record<string, unknown>> = []
          const answers: Array<Record<string, unknown>> = []
          for (const pending of toInsert) {
            const { request } = pending
            const channel = channels.get(request.channelId)!
            const id = newId.message()
            const context = request.message.context
            const contextWhatsAppId =
              context === undefined ? null : referenced.get(context.message_id)!.whatsapp_id
            const content =
              request.message.type === "reaction"
                ? { ...request.message.reaction }
                : contentOf(request.message)
            const message = renderMessage({
              id,
              channel_id: request.channelId,
              direction: "outbound",
              chat: request.message.to,
              type: request.message.type,
              content: content as Record<string, unknown>,
              context_message_id: context?.message_id ?? null,
              context_whatsapp_id: contextWhatsAppId,
              whatsapp_id: outboundWhatsAppId(id),
              status: "queued",
              failure_reason: null,
              failure_detail: null,
              created_at: channel.now,
              updated_at: channel.now,
              channel_phone: channel.phone_number
            })
            rows.push({
              id,
              customer_id: request.customerId,
              channel_id: request.channelId,
              chat: message.to,
              type: message.type,
              content,
              context_message_id: context?.message_id ?? null,
              context_whatsapp_id: contextWhatsAppId,
              whatsapp_id: message.whatsapp_id
            })
            if (request.idempotencyKey !== undefined) {
              const place = placeIn(storedAnswers, [request.apiKeyId, request.idempotencyKey])
              answers.push({
                a: request.apiKeyId,
                k: request.idempotencyKey,
                c: request.customerId,
                h: requestHashOf([routeOf(request.channelId), request.message]),
                r: keyRing.encrypt(encodeAnswer(message), place)
              })
            }
            outcomes.set(pending, Exit.succeed({ message, replayed: false }))
          }
          yield* sql`
            WITH r AS (
              SELECT * FROM json_to_recordset(${JSON.stringify(rows)}::json) AS r(id text, customer_id text,
                channel_id text, chat text, type text, content jsonb, context_message_id text,
                context_whatsapp_id text, whatsapp_id text)
            ), m AS (
              INSERT INTO messages (id, customer_id, channel_id, direction, chat, type, content,
                context_message_id, context_whatsapp_id, whatsapp_id, status)
              SELECT id, customer_id, channel_id, 'outbound', chat, type, content, context_message_id,
                context_whatsapp_id, whatsapp_id, 'queued' FROM r
              RETURNING id
            ), s AS (
              INSERT INTO message_statuses (message_id, status) SELECT id, 'queued' FROM m
            ), k AS (
              INSERT INTO idempotency_keys (api_key_id, key, customer_id, request_hash, response_ciphertext)
              SELECT a, k, c, h, r FROM json_to_recordset(${JSON.stringify(answers)}::json)
                AS x(a text, k text, c text, h text, r text)
              ON CONFLICT (api_key_id, key) DO UPDATE
                SET customer_id = excluded.customer_id, request_hash = excluded.request_hash,
                    response_ciphertext = excluded.response_ciphertext, created_at = now()
            )
            SELECT pg_notify(${outboxChannel}, channel_id) FROM (SELECT DISTINCT channel_id FROM r) AS c`
        }
        return outcomes
      })

    /**
     * The common send (no Idempotency-Key, no message referenced) in one statement, a transaction of
     * its own: the channel checked, the messages and their first status inserted, the outbox woken. One
     * round trip, where a transaction of several statements waits on the event loop for each of them.
     */
    const writePlain = (batch: ReadonlyArray<Pending>) =>
      Effect.gen(function* () {
        const outcomes = new Map<Pending, Exit.Exit<Accepted, SendError>>()
        const sends = new Map<string, { readonly pending: Pending; readonly row: PlainRow }>()
        for (const pending of batch) {
          const { request } = pending
          if (request.onlyChannel !== null && request.onlyChannel !== request.channelId) {
            outcomes.set(pending, Exit.fail(new ChannelNotFound({ channelId: request.channelId })))
            continue
          }
          const id = newId.message()
          sends.set(id, {
            pending,
            row: {
              id,
              customer_id: request.customerId,
              channel_id: request.channelId,
              chat: request.message.to,
              type: request.message.type,
              content: contentOf(request.message) as Record<string, unknown>,
              whatsapp_id: outboundWhatsAppId(id)
            }
          })
        }
        const stored =
          sends.size === 0
            ? []
            : yield* sql<
                | { id: string; created_at: Date; phone_number: string | null; logged_out: null }
                | { id: null; customer_id: string; logged_out: string }
              >`
                WITH r AS (
                  SELECT * FROM json_to_recordset(${JSON.stringify(Array.from(sends.values(), (send) => send.row))}::json)
                    AS r(id text, customer_id text, channel_id text, chat text, type text, content jsonb, whatsapp_id text)
                ), c AS (
                  -- share-locked as in the transaction: a delete or logout waits for these sends to commit;
                  -- in id order, as the inbox's batches take theirs: in the table's order (which each
                  -- update of a channel's row changes) a batch of several channels deadlocked with them
                  SELECT id, customer_id, phone_number, status FROM channels
                  WHERE id IN (SELECT channel_id FROM r) AND status <> 'deleted' ORDER BY id FOR SHARE
                ), m AS (
                  INSERT INTO messages (id, customer_id, channel_id, direction, chat, type, content, whatsapp_id, status)
                  SELECT r.id, r.customer_id, r.channel_id, 'outbound', r.chat, r.type, r.content, r.whatsapp_id, 'queued'
                  FROM r JOIN c ON c.id = r.channel_id AND c.customer_id = r.customer_id AND c.status <> 'logged_out'
                  RETURNING id, channel_id, created_at
                ), s AS (
                  INSERT INTO message_statuses (message_id, status) SELECT id, 'queued' FROM m
                ), woken AS (
                  SELECT pg_notify(${outboxChannel}, channel_id) FROM (SELECT DISTINCT channel_id FROM m) AS d
                )
                SELECT m.id, m.created_at, c.phone_number, NULL AS customer_id, NULL AS logged_out
                FROM m JOIN c ON c.id = m.channel_id WHERE (SELECT count(*) FROM woken) >= 0
                UNION ALL
                SELECT NULL, NULL, NULL, customer_id, id FROM c WHERE status = 'logged_out'`
        // the customer of each logged-out channel named: another customer's is not found
        const loggedOutChannels = new Map<string, string>()
        for (const written of stored) {
          if (written.id === null) {
            loggedOutChannels.set(written.logged_out, written.customer_id)
            continue
          }
          const { pending, row } = sends.get(written.id)!
          sends.delete(written.id)
          const message = renderMessage({
            ...row,
            direction: "outbound",
            context_message_id: null,
            context_whatsapp_id: null,
            status: "queued",
            failure_reason: null,
            failure_detail: null,
            created_at: written.created_at,
            updated_at: written.created_at,
            channel_phone: written.phone_number
          })
          outcomes.set(pending, Exit.succeed({ message, replayed: false }))
        }
        // not stored: the channel is logged out, gone, or another customer's
        for (const { pending } of sends.values()) {
          const { channelId, customerId } = pending.request
          outcomes.set(
            pending,
            Exit.fail(
              loggedOutChannels.get(channelId) === customerId
                ? loggedOut(channelId)
                : new ChannelNotFound({ channelId })
            )
          )
        }
        return outcomes
      }).pipe(Effect.catchTag("SqlError", Effect.die))

    /** Writes `batch` with `writer` and answers each send of it once that has committed. */
    const settleWith = (
      writer: (batch: ReadonlyArray<Pending>) => Effect.Effect<Map<Pending, Exit.Exit<Accepted, SendError>>>,
      batch: ReadonlyArray<Pending>
    ) =>
      batch.length === 0
        ? Effect.void
        : Effect.map(Effect.exit(writer(batch)), (result) => {
            for (const pending of batch) {
              if (pending.keyed !== undefined) keysInFlight.delete(pending.keyed)
              Deferred.doneUnsafe(
                pending.answer,
                Exit.isSuccess(result) ? result.value.get(pending)! : Exit.failCause(result.cause)
              )
            }
          })

    const isPlain = (pending: Pending) =>
      pending.keyed === undefined &&
      pending.request.message.context === undefined &&
      pending.request.message.type !== "reaction"

    const settle = (batch: ReadonlyArray<Pending>) =>
      Effect.andThen(
        settleWith(writePlain, batch.filter(isPlain)),
        settleWith(
          (rest) => inTransaction(write(rest)),
          batch.filter((pending) => !isPlain(pending))
        )
      )

    for (let i = 0; i < workers; i++) {
      yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.takeBetween(queue, 1, maxBatch), settle)))
    }

    return MessageIntake.of({
      send: (request) =>
        Effect.suspend(() => {
          const keyed =
            request.idempotencyKey === undefined
              ? undefined
              : `${request.apiKeyId}\n${request.idempotencyKey}`
          if (keyed !== undefined) {
            if (keysInFlight.has(keyed)) {
              return Effect.fail(
                new IdempotencyKeyInUse({
                  detail: "The first request with this Idempotency-Key has not finished; retry later"
                })
              )
            }
            keysInFlight.add(keyed)
          }
          const answer = Deferred.makeUnsafe<Accepted, SendError>()
          Queue.offerUnsafe(queue, { request, answer, keyed })
          return Deferred.await(answer)
        })
    })
  })
)
