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
  Schedule,
  Schema
} from "effect"
import { PgClient } from "@effect/sql-pg"
import { Audit } from "../audit/audit.ts"
import { GatewayConfigService } from "../config/config.ts"
import { KeyRing, placeIn } from "../crypto/keyRing.ts"
import { transaction } from "../db/transaction.ts"
import { EventLog, eventSecretPlace } from "../events/eventLog.ts"
import { drawNextDelay, webhookDeliveryRetries } from "../retry/retryPolicy.ts"
import { makeLruMap } from "../tenancy/lruMap.ts"
import { type AttemptError, ConnectionReset } from "./attemptErrors.ts"
import { DestinationClient, type DestinationResponse, failureOf } from "./destinationClient.ts"
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

/**
 * Deliveries are claimed ahead of the free slots, up to this many times the concurrency in flight and
 * ready together (and each endpoint's share), so a freed slot starts the next delivery without waiting
 * for a claim's round trip; a ready delivery waits at most one round of its endpoint's attempts.
 */
const ahead = 4

/** A claimed delivery lapses back to the queue after this (its `claimed_until`), should its node die mid-attempt. */
const claimLease = Duration.seconds(60)
const claimLeaseMillis = Duration.toMillis(claimLease)

const ClaimedRow = Schema.Struct({
  id: Schema.String,
  customer_id: Schema.String,
  endpoint_id: Schema.String,
  event_id: Schema.String,
  attempts: Schema.Number,
  scheduled_attempts: Schema.Number,
  type: Schema.String,
  /** The event's data as PostgreSQL prints its jsonb: posted as it is, parsed only to add a QR. */
  data: Schema.String,
  /** Epoch milliseconds, as cheap to read as a number (no Date parsed per row). */
  event_created_at: Schema.Number,
  event_secret: Schema.NullOr(Schema.String),
  url: Schema.String,
  secret_ciphertext: Schema.NullOr(Schema.String),
  previous_secret_ciphertext: Schema.NullOr(Schema.String),
  previous_secret_expires_at: Schema.NullOr(Schema.Number),
  enabled: Schema.Boolean,
  failing: Schema.Boolean,
  /** How many due deliveries the claim looked at: fewer than it looks for, and none are left. */
  seen: Schema.Number
})
type Claimed = typeof ClaimedRow.Type
const isClaimedRow = Schema.is(ClaimedRow)

/**
 * The claim's rows as they came, without a decoded copy of each: the first is checked against the
 * schema, so a renamed or missing column still fails loudly (a defect); the rest share its query.
 */
const claimedRows = (rows: ReadonlyArray<unknown>): Array<Claimed> => {
  if (rows.length > 0 && !isClaimedRow(rows[0])) {
    throw new Error(`a claimed delivery row does not match its schema: ${JSON.stringify(rows[0])}`)
  }
  return rows as Array<Claimed>
}

/** What one attempt came to, as it will be recorded. */
interface Outcome {
  /** What the record needs of the delivery, not the whole claimed row (which would outlive the attempt). */
  readonly delivery: Pick<Claimed, "id" | "attempts" | "endpoint_id" | "customer_id" | "event_created_at">
  /** Epoch milliseconds, as both times here: no Date made per attempt, none printed per record. */
  readonly attemptedAt: number
  readonly durationMillis: number
  readonly statusCode: number | null
  readonly error: AttemptError | null
  readonly excerpt: string | null
  /** null: no further attempt (succeeded, or the schedule is spent). */
  readonly nextAttemptAt: number | null
}

const deliveryOf = ({
  id,
  attempts,
  endpoint_id,
  customer_id,
  event_created_at
}: Claimed): Outcome["delivery"] => ({
  id,
  attempts,
  endpoint_id,
  customer_id,
  event_created_at
})

/** Text from a receiver as PostgreSQL keeps it: no NUL, whole code points only. */
const storable = (text: string | null) =>
  text === null
    ? null
    : text
        .replaceAll("\u0000", "\ufffd")
        .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/gu, "\ufffd")

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
 * A batch's rows as one JSON string, each row an array in the order the record reads them (no
 * object per row to stringify, no key repeated per row): the delivery's next state, and its attempt
 * when one was made (not for a delivery found disabled). Times are epoch milliseconds.
 */
const recordsOf = (batch: ReadonlyArray<Outcome>) => {
  let json = "["
  for (const o of batch) {
    const made = o.durationMillis > 0 || o.error !== null || o.statusCode !== null
    const status =
      o.error === null && o.statusCode !== null
        ? "succeeded"
        : o.nextAttemptAt === null
          ? "failed"
          : "pending"
    if (json.length > 1) json += ","
    json +=
      `[${JSON.stringify(o.delivery.id)},${o.delivery.attempts},${made},"${status}",${o.nextAttemptAt},` +
      `${o.attemptedAt},${Math.round(o.durationMillis)},${o.statusCode},` +
      `${o.error === null ? "null,null" : `"${o.error._tag}",${JSON.stringify(storable(errorDetail(o.error)))}`},` +
      `${o.excerpt === null ? "null" : JSON.stringify(storable(o.excerpt))}]`
  }
  return json + "]"
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
    // one customer's endpoints, however many and however slow, hold this many slots at most
    const perCustomer = config.dispatchPerCustomer
    // an endpoint that keeps failing (a hanging one ties a slot up for 15 s an attempt) gets two
    const perFailingEndpoint = Math.min(2, perEndpoint)

    const inFlight = new Map<string, number>()
    const inFlightByCustomer = new Map<string, number>()
    /** Endpoints whose last attempts failed, as claims and outcomes tell it. */
    const failingEndpoints = makeLruMap<string, true>(10_000)
    let inFlightTotal = 0
    /** Claimed, not yet started, oldest first; with when they were claimed. */
    const ready: Array<{ readonly claimed: Claimed; readonly claimedAt: number }> = []
    /** Set when deliveries may have come due: a notification, or the poll. */
    let due = true
    const wake = yield* Queue.sliding<void>(1)
    const arrived = yield* Queue.sliding<void>(1)
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

    /** Whether the endpoint's previous secret still signs (a rotation's grace period). */
    const previousSigns = (claimed: Claimed, now: number) =>
      claimed.previous_secret_ciphertext !== null &&
      claimed.previous_secret_expires_at !== null &&
      claimed.previous_secret_expires_at > now

    /** The signing keys, decrypted once per ciphertext: read from the cache without an effect when known. */
    const signingKeys = (claimed: Claimed, now: number) => {
      const known = keys.get(claimed.secret_ciphertext!)
      if (known !== undefined) {
        if (!previousSigns(claimed, now)) return Effect.succeed([known])
        const previous = keys.get(claimed.previous_secret_ciphertext!)
        if (previous !== undefined) return Effect.succeed([known, previous])
      }
      return Effect.gen(function* () {
        const current = yield* keyOf(claimed.secret_ciphertext!, placeIn(secretColumn, [claimed.endpoint_id]))
        if (!previousSigns(claimed, now)) return [current]
        const previous = yield* keyOf(
          claimed.previous_secret_ciphertext!,
          placeIn(previousSecretColumn, [claimed.endpoint_id])
        )
        return [current, previous]
      })
    }

    /** The event as posted; a QR goes out in the signed body while it can still be scanned. */
    const bodyOf = (claimed: Claimed, now: number) => {
      const posted = (data: string) =>
        `{"type":${JSON.stringify(claimed.type)},"timestamp":"${new Date(claimed.event_created_at).toISOString()}","data":${data}}`
      // only an event with a secret part (a QR) needs its data parsed: the rest is posted as stored
      if (claimed.event_secret === null) return Effect.succeed(posted(claimed.data))
      const data = JSON.parse(claimed.data) as Record<string, unknown>
      const expiresAt = typeof data["expires_at"] === "string" ? Date.parse(data["expires_at"]) : Number.NaN
      if (!(expiresAt > now)) return Effect.succeed(posted(claimed.data))
      return keyRing.decrypt(claimed.event_secret, eventSecretPlace(claimed.event_id as never)).pipe(
        Effect.orDie,
        Effect.map((secret) =>
          posted(JSON.stringify({ ...data, ...(JSON.parse(secret) as Record<string, unknown>) }))
        )
      )
    }

    /** What an attempt came to, its next attempt drawn from the schedule when it failed for a reason worth retrying. */
    const outcomeOf = (
      claimed: Claimed,
      now: number,
      durationMillis: number,
      answer: DestinationResponse | null,
      error: AttemptError | null
    ): Effect.Effect<Outcome> => {
      const outcome = (nextAttemptAt: number | null): Outcome => ({
        delivery: deliveryOf(claimed),
        attemptedAt: now,
        durationMillis: answer?.durationMillis ?? durationMillis,
        statusCode: answer?.status ?? null,
        error,
        excerpt: answer?.excerpt ?? null,
        nextAttemptAt
      })
      if (error === null || (error._tag === "HttpStatus" && error.status === 410)) {
        return Effect.succeed(outcome(null))
      }
      return Effect.map(
        drawNextDelay(webhookDeliveryRetries, {
          attempt: claimed.scheduled_attempts + 1,
          retryAfter: error._tag === "HttpStatus" ? error.retryAfter : undefined
        }),
        (delay) => outcome(Option.isSome(delay) ? now + Duration.toMillis(delay.value) : null)
      )
    }

    /** Posts the signed body and tells what came of it; a defect of the client counts as a failed connection. */
    const post = (claimed: Claimed, now: number, body: string, keys: ReadonlyArray<Buffer>) => {
      const headers = WebhookSigner.headers(keys, claimed.event_id, Math.floor(now / 1000), body)
      const started = performance.now()
      const took = () => Math.round(performance.now() - started)
      return client.post(claimed.url, { headers, body }).pipe(
        Effect.catchDefect((defect) =>
          Effect.fail(new ConnectionReset({ detail: `the request failed: ${String(defect)}` }))
        ),
        Effect.matchEffect({
          onFailure: (error) => outcomeOf(claimed, now, took(), null, error),
          onSuccess: (answer) => outcomeOf(claimed, now, took(), answer, failureOf(answer))
        })
      )
    }

    // a plain chain, not a generator: this runs once per delivery and is most of the dispatcher's own work
    const attempt = (claimed: Claimed): Effect.Effect<Outcome> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        if (!claimed.enabled || claimed.secret_ciphertext === null) {
          // disabled or deleted since it was queued: nothing is posted
          return outcomeOf(claimed, now, 0, null, null)
        }
        return Effect.flatMap(bodyOf(claimed, now), (body) =>
          Effect.flatMap(signingKeys(claimed, now), (keys) => post(claimed, now, body, keys))
        )
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

    /**
     * One transaction for a batch of attempts: their endpoints' health first (endpoints are locked
     * before deliveries, as every change to an endpoint does), then their rows and their deliveries'
     * next state, fenced by the attempt each was claimed for.
     */
    const recordBatch = (batch: ReadonlyArray<Outcome>) =>
      inTransaction(
        Effect.gen(function* () {
          const succeeded = (o: Outcome) => o.error === null && o.statusCode !== null
          const healthy = [...new Set(batch.filter(succeeded).map((o) => o.delivery.endpoint_id))]
          const failing = [
            ...new Set(batch.filter((o) => o.error !== null).map((o) => o.delivery.endpoint_id))
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
                .map((o) => o.delivery.endpoint_id)
            )
          ].map((id) => ({ id, reason: "endpoint_gone" as const }))
          yield* disable([...gone, ...tooLong])
          yield* sql`
            WITH v AS (
              SELECT r ->> 0 AS id, (r ->> 1)::int AS attempt, (r ->> 2)::boolean AS made, r ->> 3 AS status,
                to_timestamp((r ->> 4)::float8 / 1000) AS next_attempt_at,
                to_timestamp((r ->> 5)::float8 / 1000) AS attempted_at, (r ->> 6)::int AS duration_ms,
                (r ->> 7)::int AS status_code, r ->> 8 AS error_type, r ->> 9 AS error_detail,
                r ->> 10 AS response_excerpt
              FROM jsonb_array_elements(${recordsOf(batch)}::jsonb) AS r
            ), made AS (
              INSERT INTO delivery_attempts
                (delivery_id, attempt, node_id, attempted_at, duration_ms, status_code, error_type, error_detail,
                  response_excerpt)
              SELECT id, attempt, ${node}, attempted_at, duration_ms, status_code, error_type, error_detail,
                response_excerpt
              FROM v WHERE made
              ON CONFLICT DO NOTHING
            )
            UPDATE deliveries d SET
              status = v.status, next_attempt_at = v.next_attempt_at, scheduled_attempts = d.scheduled_attempts + 1,
              claimed_by = NULL, claimed_until = NULL, last_attempt_at = v.attempted_at,
              succeeded_at = CASE WHEN v.status = 'succeeded' THEN v.attempted_at END
            FROM v
            WHERE d.id = v.id AND d.attempts = v.attempt`
        })
      )

    /** A batch that cannot be recorded is recorded one attempt at a time, so one bad row sinks no other. */
    const record = (batch: ReadonlyArray<Outcome>): Effect.Effect<void> =>
      recordBatch(batch).pipe(
        Effect.catchCause((cause) =>
          batch.length === 1
            ? Effect.logWarning("could not record a webhook attempt", cause)
            : Effect.forEach(batch, (outcome) => record([outcome]), { discard: true })
        )
      )

    const recordOutcomes = Effect.gen(function* () {
      const batch = yield* Queue.takeBetween(outcomes, 1, 500)
      yield* record(batch)
      // one update per kind of outcome in the batch, not one per attempt; the lag's without an effect each
      const context = yield* Effect.context<never>()
      const made = new Map<string, { readonly outcome: string; readonly error_type: string; count: number }>()
      for (const outcome of batch) {
        const kind = outcome.error === null ? "succeeded" : "failed"
        const errorType = outcome.error?._tag ?? "none"
        const key = `${kind} ${errorType}`
        const seen = made.get(key)
        if (seen === undefined) made.set(key, { outcome: kind, error_type: errorType, count: 1 })
        else seen.count++
        if (outcome.error === null && outcome.statusCode !== null) {
          deliveryLag.updateUnsafe(
            (outcome.attemptedAt + outcome.durationMillis - outcome.delivery.event_created_at) / 1000,
            context
          )
        }
      }
      for (const { count, ...tags } of made.values()) {
        yield* Metric.update(Metric.withAttributes(attemptsMade, tags), count)
      }
    })

    const running = yield* FiberSet.make()

    const count = (counts: Map<string, number>, key: string, by: 1 | -1) => {
      const left = (counts.get(key) ?? 0) + by
      if (left === 0) counts.delete(key)
      else counts.set(key, left)
    }

    const occupy = (claimed: Claimed) => {
      inFlightTotal++
      count(inFlight, claimed.endpoint_id, 1)
      count(inFlightByCustomer, claimed.customer_id, 1)
    }

    const release = (claimed: Claimed) => {
      inFlightTotal--
      count(inFlight, claimed.endpoint_id, -1)
      count(inFlightByCustomer, claimed.customer_id, -1)
      Queue.offerUnsafe(wake, undefined)
    }

    /** How many attempts an endpoint may have in flight: fewer while it keeps failing. */
    const shareOf = (endpointId: string) =>
      failingEndpoints.has(endpointId) ? perFailingEndpoint : perEndpoint

    /** Whether the delivery's endpoint and customer both have room for one more attempt. */
    const mayStart = (claimed: Claimed) =>
      (inFlight.get(claimed.endpoint_id) ?? 0) < shareOf(claimed.endpoint_id) &&
      (inFlightByCustomer.get(claimed.customer_id) ?? 0) < perCustomer

    // the front is taken most often: shift() moves the array's start, where splice() copies a removed array
    const take = (at: number) => (at === 0 ? ready.shift() : ready.splice(at, 1))

    /**
     * Takes a slot for the oldest ready delivery that may start, if there is a free slot: one whose
     * endpoint already has its share in flight is passed over (so a slow endpoint's backlog never holds
     * up another's), and one that waited past half its claim's lease is left to lapse back to the queue
     * rather than attempted late.
     */
    const nextReady = (): Claimed | undefined => {
      if (inFlightTotal >= concurrency) return undefined
      const stale = Date.now() - claimLeaseMillis / 2
      let at = 0
      while (at < ready.length) {
        const row = ready[at]!
        if (row.claimedAt < stale) {
          take(at)
        } else if (!mayStart(row.claimed)) {
          at++
        } else {
          take(at)
          occupy(row.claimed)
          return row.claimed
        }
      }
      return undefined
    }

    /**
     * Attempts a delivery whose slot is taken, records its outcome and frees the slot, then goes on with
     * the next ready delivery on the same fiber while there is one it may start: a freed slot is taken
     * again at once, without waiting for another fiber to be scheduled.
     */
    const attempts = (first: Claimed) => {
      let current: Claimed | undefined = first
      return Effect.whileLoop({
        while: () => current !== undefined,
        body: () =>
          attempt(current!).pipe(
            Effect.map((outcome) => {
              if (outcome.error === null) failingEndpoints.delete(outcome.delivery.endpoint_id)
              else failingEndpoints.set(outcome.delivery.endpoint_id, true)
              Queue.offerUnsafe(outcomes, outcome)
            }),
            Effect.catchCause((cause) => Effect.logWarning("webhook attempt failed unexpectedly", cause))
          ),
        step: () => {
          release(current!)
          current = nextReady()
        }
      }).pipe(
        Effect.ensuring(
          Effect.sync(() => {
            if (current !== undefined) release(current)
          })
        )
      )
    }

    /** Starts a fiber for each ready delivery that may start now. */
    const startReady = Effect.gen(function* () {
      let next = nextReady()
      while (next !== undefined) {
        yield* FiberSet.run(running, attempts(next))
        next = nextReady()
      }
    })

    /** Whether some free slot has no ready delivery it may start. */
    const starving = () => inFlightTotal < concurrency && !ready.some((row) => mayStart(row.claimed))

    /**
     * Claims up to `wanted` due deliveries, at most `ahead` times its share in flight and ready for each
     * endpoint; the rows of an endpoint that has that many are left to other processes.
     */
    const claim = (wanted: number) =>
      Effect.gen(function* () {
        const saturated: Array<string> = []
        const room: Record<string, number> = {}
        const held = new Map(inFlight)
        const heldByCustomer = new Map(inFlightByCustomer)
        for (const row of ready) {
          count(held, row.claimed.endpoint_id, 1)
          count(heldByCustomer, row.claimed.customer_id, 1)
        }
        for (const [endpoint, n] of held) {
          const lead = ahead * shareOf(endpoint)
          if (n >= lead) saturated.push(endpoint)
          else room[endpoint] = lead - n
        }
        const busyCustomers = [...heldByCustomer]
          .filter(([, n]) => n >= ahead * perCustomer)
          .map(([id]) => id)
        return yield* sql`
          WITH candidates AS (
            SELECT id, endpoint_id, next_attempt_at FROM deliveries
            WHERE status = 'pending' AND next_attempt_at <= now()
              AND (claimed_until IS NULL OR claimed_until <= now())
              AND endpoint_id <> ALL(${saturated}::text[]) AND customer_id <> ALL(${busyCustomers}::text[])
            ORDER BY next_attempt_at
            LIMIT ${wanted * 4}
          ), windowed AS (
            SELECT id FROM (
              SELECT id, endpoint_id, next_attempt_at,
                row_number() OVER (PARTITION BY endpoint_id ORDER BY next_attempt_at) AS place
              FROM candidates
            ) ranked
            WHERE place <= coalesce((${JSON.stringify(room)}::jsonb ->> endpoint_id)::int, ${ahead * perEndpoint})
            ORDER BY next_attempt_at
            LIMIT ${wanted}
          ), chosen AS (
            -- only the rows taken are locked (a lock writes the row); one claimed meanwhile is skipped or re-checked
            SELECT id FROM deliveries
            WHERE id IN (SELECT id FROM windowed) AND status = 'pending' AND next_attempt_at <= now()
              AND (claimed_until IS NULL OR claimed_until <= now())
            FOR UPDATE SKIP LOCKED
          )
          -- no indexed column changes (the lease is claimed_until alone), so the row is updated in place (HOT)
          UPDATE deliveries d SET attempts = d.attempts + 1, claimed_by = ${node},
            claimed_until = now() + make_interval(secs => ${Duration.toSeconds(claimLease)})
          FROM chosen, events e, webhook_endpoints w
          WHERE d.id = chosen.id AND e.id = d.event_id AND w.id = d.endpoint_id
          RETURNING d.id, d.customer_id, d.endpoint_id, d.event_id, d.attempts, d.scheduled_attempts,
            e.type, e.data::text AS data, floor(extract(epoch FROM e.created_at) * 1000)::float8 AS event_created_at, e.secret_ciphertext AS event_secret,
            w.url, w.secret_ciphertext, w.previous_secret_ciphertext, floor(extract(epoch FROM w.previous_secret_expires_at) * 1000)::float8 AS previous_secret_expires_at,
            w.enabled AND w.deleted_at IS NULL AS enabled, w.failing_since IS NOT NULL AS failing,
            (SELECT count(*) FROM candidates)::int AS seen`.pipe(Effect.map(claimedRows), Effect.orDie)
      })

    /**
     * Keeps deliveries claimed ahead of the slots, so a slot that frees starts the next at once instead
     * of waiting for a round trip: claims once half the lead is used while claims come back full, and
     * otherwise when deliveries may have come due (a notification, the poll) or a free slot has
     * nothing to start.
     */
    const dispatch = Effect.gen(function* () {
      const lead = () => ahead * concurrency - inFlightTotal - ready.length
      let drained = true
      while (true) {
        if (drained || lead() < concurrency / 2) yield* Queue.take(wake)
        const room = lead()
        if (room <= 0 || !(due || starving() || (!drained && room >= concurrency / 2))) continue
        due = false
        const claimedAt = Date.now()
        // after a lull, a first claim the size of the slots: the first posts need not wait for a whole lead's rows
        const wanted = inFlightTotal + ready.length === 0 ? Math.min(room, concurrency) : room
        const claimed = yield* claim(wanted).pipe(
          Effect.catchCause((cause) =>
            Effect.as(Effect.logWarning("could not claim webhook deliveries", cause), [] as Array<Claimed>)
          )
        )
        for (const row of claimed) {
          if (row.failing) failingEndpoints.set(row.endpoint_id, true)
          else failingEndpoints.delete(row.endpoint_id)
          ready.push({ claimed: row, claimedAt })
        }
        // a claim the endpoints' windows cut short leaves due deliveries behind: only one that saw them all drained the queue
        drained = claimed.length === 0 || (claimed.length < wanted && claimed[0]!.seen < wanted * 4)
        if (claimed.length > 0) yield* Queue.offer(arrived, undefined)
      }
    })

    /** Deliveries may have come due: the next wake claims even if the last claim came back short. */
    const markDue = () => {
      due = true
      Queue.offerUnsafe(wake, undefined)
    }

    /** Starts what a claim brought into free slots (a slot that frees later takes the next on its own fiber). */
    const starter = Effect.forever(Effect.flatMap(Queue.take(arrived), () => startReady))

    // on the way out, once the loops below have stopped: what was recorded is flushed, and what was in flight is given back at once
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* FiberSet.clear(running)
        const left = yield* Queue.clear(outcomes).pipe(Effect.orElseSucceed(() => [] as Array<Outcome>))
        if (left.length > 0) yield* record(left)
        yield* sql`
          UPDATE deliveries SET claimed_by = NULL, claimed_until = NULL
          WHERE claimed_by = ${node} AND status = 'pending'`.pipe(Effect.ignore)
      })
    )

    // claims a previous run of this node left behind are given back: that run is over
    yield* sql`
      UPDATE deliveries SET claimed_by = NULL, claimed_until = NULL
      WHERE claimed_by = ${node} AND status = 'pending'`.pipe(Effect.orDie)

    yield* Effect.forkScoped(
      Effect.gen(function* () {
        const notifications = yield* sql.listen(deliveriesDueChannel)
        markDue()
        yield* Effect.forever(Effect.map(Queue.take(notifications), markDue))
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
    // the fallback when no notification comes: a retry coming due, a notification lost
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(pollInterval), Effect.sync(markDue))))
    yield* Effect.forkScoped(starter)
    yield* Effect.forkScoped(
      Effect.repeat(
        sql<{ due: number; oldest: number | null }>`
          SELECT count(*)::int AS due, extract(epoch FROM now() - min(next_attempt_at))::float8 AS oldest
          FROM deliveries
          WHERE status = 'pending' AND next_attempt_at <= now() AND (claimed_until IS NULL OR claimed_until <= now())`.pipe(
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
