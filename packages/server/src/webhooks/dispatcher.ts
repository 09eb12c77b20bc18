import {
  type ChannelId,
  type CustomerId,
  failingEndpointDisabledAfterDays,
  type WebhookEndpointId
} from "@whatisup/domain"
import {
  Clock,
  Context,
  Duration,
  Effect,
  FiberSet,
  Layer,
  Metric,
  Option,
  Queue,
  Result,
  Schedule,
  Schema
} from "effect"
import { PgClient } from "@effect/sql-pg"
import { Audit } from "../audit/audit.ts"
import { GatewayConfigService } from "../config/config.ts"
import { KeyRing, placeIn } from "../crypto/keyRing.ts"
import { decodeRows, transaction } from "../db/transaction.ts"
import { EventLog, eventSecretPlace } from "../events/eventLog.ts"
import { drawNextDelay, webhookDeliveryRetries } from "../retry/retryPolicy.ts"
import { makeLruMap } from "../tenancy/lruMap.ts"
import { type AttemptError, ConnectionReset, HttpStatus } from "./attemptErrors.ts"
import { DestinationClient } from "./destinationClient.ts"
import { failPending, previousSecretColumn, secretColumn } from "./endpoints.ts"
import { deliveriesDueChannel } from "../events/deliveries.ts"
import { WebhookSigner } from "./signer.ts"

const attemptsMade = Metric.counter("webhook_attempts_total", {
  description: "Webhook delivery attempts by outcome (succeeded, failed) and error type"
})
const deliveryLag = Metric.histogram("webhook_delivery_lag_seconds", {
  description: "From an event to its successful delivery",
  boundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300, 1800, 7200, 36000, 86400]
})
const dueBacklog = Metric.gauge("webhook_deliveries_due", {
  description: "Deliveries due now and not yet attempted, across every node"
})
const oldestDue = Metric.gauge("webhook_oldest_due_seconds", {
  description: "How long the oldest due delivery has waited past its due time, across every node"
})

/** Due deliveries are looked for this often when no notification says so (e.g. a retry coming due). */
const pollInterval = Duration.seconds(1)

/** A claimed delivery lapses back to the queue after this, should its node die mid-attempt. */
const claimLease = Duration.seconds(60)

const ClaimedRow = Schema.Struct({
  id: Schema.String,
  customer_id: Schema.String,
  endpoint_id: Schema.String,
  event_id: Schema.String,
  attempts: Schema.Number,
  scheduled_attempts: Schema.Number,
  type: Schema.String,
  data: Schema.Record(Schema.String, Schema.Unknown),
  event_created_at: Schema.Date,
  event_secret: Schema.NullOr(Schema.String),
  url: Schema.String,
  secret_ciphertext: Schema.NullOr(Schema.String),
  previous_secret_ciphertext: Schema.NullOr(Schema.String),
  previous_secret_expires_at: Schema.NullOr(Schema.Date),
  enabled: Schema.Boolean
})
type Claimed = typeof ClaimedRow.Type

/** What one attempt came to, as it will be recorded. */
interface Outcome {
  readonly claimed: Claimed
  readonly attemptedAt: Date
  readonly durationMillis: number
  readonly statusCode: number | null
  readonly error: AttemptError | null
  readonly excerpt: string | null
  /** null: no further attempt (succeeded, or the schedule is spent). */
  readonly nextAttemptAt: Date | null
}

const errorDetail = (error: AttemptError): string => {
  switch (error._tag) {
    case "HttpStatus":
      return `the endpoint answered ${error.status}`
    case "ConnectTimeout":
      return "no connection within 5 s"
    case "ResponseTimeout":
      return "no complete answer within 15 s"
    case "DestinationBlocked":
      return error.detail
    default:
      return error.detail
  }
}

/**
 * Posts due deliveries: claims them (several processes share the queue through SKIP LOCKED),
 * makes one attempt each, records exactly what happened in batches, and schedules the next.
 */
export class Dispatcher extends Context.Service<
  Dispatcher,
  {
    /** Attempts in flight in this process. */
    readonly inFlight: Effect.Effect<number>
  }
>()("whatisup/Dispatcher") {}

export const layerDispatcher = Layer.effect(
  Dispatcher,
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const config = yield* GatewayConfigService
    const keyRing = yield* KeyRing
    const client = yield* DestinationClient
    const audit = yield* Audit
    const events = yield* EventLog
    const inTransaction = transaction(sql)
    const node = config.nodeId
    const concurrency = config.dispatchConcurrency
    const perEndpoint = config.dispatchPerEndpoint

    const inFlight = new Map<string, number>()
    let inFlightTotal = 0
    const wake = yield* Queue.sliding<void>(1)
    const outcomes = yield* Queue.unbounded<Outcome>()
    const keys = makeLruMap<string, Buffer>(10_000)

    /** A secret's key bytes, decrypted once per ciphertext. */
    const keyOf = (ciphertext: string, place: ReturnType<typeof placeIn>) =>
      Effect.suspend(() => {
        const cached = keys.get(ciphertext)
        if (cached !== undefined) return Effect.succeed(cached)
        return Effect.map(keyRing.decrypt(ciphertext, place).pipe(Effect.orDie), (secret) => {
          const key = WebhookSigner.keyOf(secret)
          keys.set(ciphertext, key)
          return key
        })
      })

    const signingKeys = (claimed: Claimed, now: number) =>
      Effect.gen(function* () {
        const current = yield* keyOf(claimed.secret_ciphertext!, placeIn(secretColumn, [claimed.endpoint_id]))
        if (
          claimed.previous_secret_ciphertext === null ||
          claimed.previous_secret_expires_at === null ||
          claimed.previous_secret_expires_at.getTime() <= now
        ) {
          return [current]
        }
        const previous = yield* keyOf(
          claimed.previous_secret_ciphertext,
          placeIn(previousSecretColumn, [claimed.endpoint_id])
        )
        return [current, previous]
      })

    /** The event as posted; a QR goes out in the signed body while it can still be scanned. */
    const bodyOf = (claimed: Claimed, now: number) =>
      Effect.gen(function* () {
        let data = claimed.data
        const expiresAt = typeof data["expires_at"] === "string" ? Date.parse(data["expires_at"]) : Number.NaN
        if (claimed.event_secret !== null && expiresAt > now) {
          const secret = yield* keyRing
            .decrypt(claimed.event_secret, eventSecretPlace(claimed.event_id as never))
            .pipe(Effect.orDie)
          data = { ...data, ...(JSON.parse(secret) as Record<string, unknown>) }
        }
        return JSON.stringify({ type: claimed.type, timestamp: claimed.event_created_at.toISOString(), data })
      })

    const attempt = (claimed: Claimed) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const attemptedAt = new Date(now)
        if (!claimed.enabled || claimed.secret_ciphertext === null) {
          // disabled or deleted since it was queued: nothing is posted
          return {
            claimed,
            attemptedAt,
            durationMillis: 0,
            statusCode: null,
            error: null,
            excerpt: null,
            nextAttemptAt: null
          } satisfies Outcome
        }
        const body = yield* bodyOf(claimed, now)
        const headers = WebhookSigner.headers(
          yield* signingKeys(claimed, now),
          claimed.event_id,
          Math.floor(now / 1000),
          body
        )
        const started = performance.now()
        const result = yield* Effect.result(
          client
            .post(claimed.url, { headers, body })
            .pipe(
              Effect.catchDefect((defect) =>
                Effect.fail(new ConnectionReset({ detail: `the request failed: ${String(defect)}` }))
              )
            )
        )
        const durationMillis = Math.round(performance.now() - started)
        const answer = Result.isSuccess(result) ? result.success : null
        const error: AttemptError | null =
          answer === null
            ? (result as Result.Failure<never, AttemptError>).failure
            : answer.status >= 200 && answer.status < 300
              ? null
              : new HttpStatus({
                  status: answer.status,
                  retryAfter: answer.retryAfter,
                  excerpt: answer.excerpt
                })
        let nextAttemptAt: Date | null = null
        if (error !== null && !(error._tag === "HttpStatus" && error.status === 410)) {
          const delay = yield* drawNextDelay(webhookDeliveryRetries, {
            attempt: claimed.scheduled_attempts + 1,
            retryAfter: error._tag === "HttpStatus" ? error.retryAfter : undefined
          })
          nextAttemptAt = Option.match(delay, {
            onNone: () => null,
            onSome: (delay) => new Date(now + Duration.toMillis(delay))
          })
        }
        return {
          claimed,
          attemptedAt,
          durationMillis: answer?.durationMillis ?? durationMillis,
          statusCode: answer?.status ?? null,
          error,
          excerpt: answer?.excerpt ?? null,
          nextAttemptAt
        } satisfies Outcome
      })

    /** Disables endpoints for good reason, each with its audit row and a webhook.disabled to the others. */
    const disable = (endpoints: ReadonlyArray<{ id: string; reason: "endpoint_gone" | "failing" }>) =>
      Effect.gen(function* () {
        for (const { id, reason } of endpoints) {
          const rows = yield* sql<{ customer_id: CustomerId; channel_id: string | null; url: string }>`
            UPDATE webhook_endpoints SET enabled = false, disabled_reason = ${reason}, updated_at = now()
            WHERE id = ${id} AND enabled RETURNING customer_id, channel_id, url`
          const disabled = rows[0]
          if (disabled === undefined) continue
          yield* failPending(sql, [id])
          yield* audit.record({
            customerId: disabled.customer_id,
            actor: { type: "system", id: null },
            action: "webhook_endpoint.disabled",
            resourceType: "webhook_endpoint",
            resourceId: id,
            data: { disabled_reason: reason }
          })
          yield* events.append({
            customerId: disabled.customer_id,
            channelId: null,
            type: "webhook.disabled",
            data: {
              endpoint_id: id,
              channel_id: disabled.channel_id,
              url: disabled.url,
              disabled_reason: reason
            },
            recipients: {
              _tag: "AllBut",
              endpointId: id as WebhookEndpointId,
              channelId: disabled.channel_id as ChannelId | null
            }
          })
        }
      })

    /** One transaction for a batch of attempts: their rows, their deliveries' next state, their endpoints' health. */
    const record = (batch: ReadonlyArray<Outcome>) =>
      inTransaction(
        Effect.gen(function* () {
          const made = batch.filter(
            (outcome) => outcome.durationMillis > 0 || outcome.error !== null || outcome.statusCode !== null
          )
          if (made.length > 0) {
            const attempts = made.map((o) => ({
              delivery_id: o.claimed.id,
              attempt: o.claimed.attempts,
              attempted_at: o.attemptedAt.toISOString(),
              duration_ms: Math.round(o.durationMillis),
              status_code: o.statusCode,
              error_type: o.error?._tag ?? null,
              error_detail: o.error === null ? null : errorDetail(o.error),
              response_excerpt: o.excerpt
            }))
            yield* sql`
              INSERT INTO delivery_attempts
                (delivery_id, attempt, node_id, attempted_at, duration_ms, status_code, error_type, error_detail,
                  response_excerpt)
              SELECT delivery_id, attempt, ${node}, attempted_at, duration_ms, status_code, error_type, error_detail,
                response_excerpt
              FROM jsonb_to_recordset(${JSON.stringify(attempts)}::jsonb) AS a (delivery_id text, attempt int,
                attempted_at timestamptz, duration_ms int, status_code int, error_type text, error_detail text,
                response_excerpt text)
              ON CONFLICT DO NOTHING`
          }
          const succeeded = (o: Outcome) => o.error === null && o.statusCode !== null
          const next = batch.map((o) => ({
            id: o.claimed.id,
            attempts: o.claimed.attempts,
            status: succeeded(o) ? "succeeded" : o.nextAttemptAt === null ? "failed" : "pending",
            next_attempt_at: o.nextAttemptAt?.toISOString() ?? null,
            attempted_at: o.attemptedAt.toISOString()
          }))
          yield* sql`
            UPDATE deliveries d SET
              status = v.status, next_attempt_at = v.next_attempt_at, scheduled_attempts = d.scheduled_attempts + 1,
              claimed_by = NULL, last_attempt_at = v.attempted_at,
              succeeded_at = CASE WHEN v.status = 'succeeded' THEN v.attempted_at END
            FROM jsonb_to_recordset(${JSON.stringify(next)}::jsonb)
              AS v (id text, attempts int, status text, next_attempt_at timestamptz, attempted_at timestamptz)
            WHERE d.id = v.id AND d.attempts = v.attempts AND d.status = 'pending'`
          const healthy = [...new Set(batch.filter(succeeded).map((o) => o.claimed.endpoint_id))]
          const failing = [
            ...new Set(batch.filter((o) => o.error !== null).map((o) => o.claimed.endpoint_id))
          ].filter((id) => !healthy.includes(id))
          if (healthy.length > 0) {
            yield* sql`
              UPDATE webhook_endpoints SET failing_since = NULL
              WHERE id = ANY(${healthy}::text[]) AND failing_since IS NOT NULL`
          }
          const tooLong: Array<{ id: string; reason: "endpoint_gone" | "failing" }> = []
          if (failing.length > 0) {
            const stale = yield* sql<{ id: string }>`
              UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, now())
              WHERE id = ANY(${failing}::text[])
              RETURNING id, failing_since < now() - make_interval(days => ${failingEndpointDisabledAfterDays}) AS stale`
            for (const row of stale as ReadonlyArray<{ id: string; stale: boolean }>) {
              if (row.stale) tooLong.push({ id: row.id, reason: "failing" })
            }
          }
          const gone = [
            ...new Set(
              batch
                .filter((o) => o.error?._tag === "HttpStatus" && o.error.status === 410)
                .map((o) => o.claimed.endpoint_id)
            )
          ].map((id) => ({ id, reason: "endpoint_gone" as const }))
          yield* disable([...gone, ...tooLong])
        })
      ).pipe(Effect.catchCause((cause) => Effect.logWarning("could not record webhook attempts", cause)))

    const recordOutcomes = Effect.gen(function* () {
      const batch = yield* Queue.takeBetween(outcomes, 1, 500)
      yield* record(batch)
      for (const outcome of batch) {
        const tags = {
          outcome: outcome.error === null ? "succeeded" : "failed",
          error_type: outcome.error?._tag ?? "none"
        }
        yield* Metric.update(Metric.withAttributes(attemptsMade, tags), 1)
        if (outcome.error === null && outcome.statusCode !== null) {
          yield* Metric.update(
            deliveryLag,
            (outcome.attemptedAt.getTime() +
              outcome.durationMillis -
              outcome.claimed.event_created_at.getTime()) /
              1000
          )
        }
      }
    })

    const release = (endpointId: string) => {
      inFlightTotal--
      const left = (inFlight.get(endpointId) ?? 1) - 1
      if (left === 0) inFlight.delete(endpointId)
      else inFlight.set(endpointId, left)
      Queue.offerUnsafe(wake, undefined)
    }

    const claim = (free: number) =>
      Effect.gen(function* () {
        const saturated: Array<string> = []
        const room: Record<string, number> = {}
        for (const [endpoint, count] of inFlight) {
          if (count >= perEndpoint) saturated.push(endpoint)
          else room[endpoint] = perEndpoint - count
        }
        return yield* sql`
          WITH candidates AS (
            SELECT id, endpoint_id, next_attempt_at FROM deliveries
            WHERE status = 'pending' AND next_attempt_at <= now() AND endpoint_id <> ALL(${saturated}::text[])
            ORDER BY next_attempt_at
            LIMIT ${free * 4}
            FOR UPDATE SKIP LOCKED
          ), chosen AS (
            SELECT id FROM (
              SELECT id, endpoint_id, next_attempt_at,
                row_number() OVER (PARTITION BY endpoint_id ORDER BY next_attempt_at) AS place
              FROM candidates
            ) ranked
            WHERE place <= coalesce((${JSON.stringify(room)}::jsonb ->> endpoint_id)::int, ${perEndpoint})
            ORDER BY next_attempt_at
            LIMIT ${free}
          )
          UPDATE deliveries d SET attempts = d.attempts + 1, claimed_by = ${node},
            next_attempt_at = now() + make_interval(secs => ${Duration.toSeconds(claimLease)})
          FROM chosen, events e, webhook_endpoints w
          WHERE d.id = chosen.id AND e.id = d.event_id AND w.id = d.endpoint_id
          RETURNING d.id, d.customer_id, d.endpoint_id, d.event_id, d.attempts, d.scheduled_attempts,
            e.type, e.data, e.created_at AS event_created_at, e.secret_ciphertext AS event_secret,
            w.url, w.secret_ciphertext, w.previous_secret_ciphertext, w.previous_secret_expires_at,
            w.enabled AND w.deleted_at IS NULL AS enabled`.pipe(decodeRows(ClaimedRow))
      })

    const running = yield* FiberSet.make()

    /** Each claimed delivery's attempt runs on its own; its slot frees as soon as it has an outcome. */
    const start = (claimed: Claimed) => {
      inFlightTotal++
      inFlight.set(claimed.endpoint_id, (inFlight.get(claimed.endpoint_id) ?? 0) + 1)
      return FiberSet.run(
        running,
        attempt(claimed).pipe(
          Effect.flatMap((outcome) => Queue.offer(outcomes, outcome)),
          Effect.catchCause((cause) => Effect.logWarning("webhook attempt failed unexpectedly", cause)),
          Effect.ensuring(Effect.sync(() => release(claimed.endpoint_id)))
        )
      )
    }

    /** Claims as many due deliveries as there are free slots, again at once while the batches come back full. */
    const dispatch = Effect.gen(function* () {
      let full = false
      while (true) {
        if (!full) yield* Effect.timeoutOption(Queue.take(wake), pollInterval)
        const free = concurrency - inFlightTotal
        if (free <= 0) {
          full = false
          continue
        }
        const claimed = yield* claim(free).pipe(
          Effect.catchCause((cause) =>
            Effect.as(Effect.logWarning("could not claim webhook deliveries", cause), [] as Array<Claimed>)
          )
        )
        for (const row of claimed) yield* start(row)
        full = claimed.length === free
      }
    })

    // on the way out, once the loops below have stopped: what was recorded is flushed, and what was in flight is given back at once
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* FiberSet.clear(running)
        const left = yield* Queue.clear(outcomes).pipe(Effect.orElseSucceed(() => [] as Array<Outcome>))
        if (left.length > 0) yield* record(left)
        yield* sql`
          UPDATE deliveries SET next_attempt_at = now(), claimed_by = NULL
          WHERE claimed_by = ${node} AND status = 'pending'`.pipe(Effect.ignore)
      })
    )

    // claims a previous run of this node left behind are given back: that run is over
    yield* sql`
      UPDATE deliveries SET next_attempt_at = now(), claimed_by = NULL
      WHERE claimed_by = ${node} AND status = 'pending'`.pipe(Effect.orDie)

    yield* Effect.forkScoped(
      Effect.gen(function* () {
        const notifications = yield* sql.listen(deliveriesDueChannel)
        yield* Queue.offer(wake, undefined)
        yield* Effect.forever(Effect.flatMap(Queue.take(notifications), () => Queue.offer(wake, undefined)))
      }).pipe(
        Effect.scoped,
        Effect.catchCause((cause) =>
          Effect.logWarning("delivery notifications lost; listening again", cause)
        ),
        Effect.repeat(Schedule.spaced("1 second"))
      )
    )
    yield* Effect.forkScoped(Effect.forever(recordOutcomes))
    yield* Effect.forkScoped(dispatch)
    yield* Effect.forkScoped(
      Effect.repeat(
        sql<{ due: number; oldest: number | null }>`
          SELECT count(*)::int AS due, extract(epoch FROM now() - min(next_attempt_at))::float8 AS oldest
          FROM deliveries WHERE status = 'pending' AND next_attempt_at <= now() AND claimed_by IS NULL`.pipe(
          Effect.flatMap(([row]) =>
            Effect.all([Metric.update(dueBacklog, row?.due ?? 0), Metric.update(oldestDue, row?.oldest ?? 0)])
          ),
          Effect.catchCause((cause) => Effect.logDebug("could not measure the delivery backlog", cause))
        ),
        Schedule.spaced("5 seconds")
      )
    )
    return Dispatcher.of({ inFlight: Effect.sync(() => inFlightTotal) })
  })
)
