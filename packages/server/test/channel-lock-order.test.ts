import { expect, layer } from "@effect/vitest"
import type { ChannelId } from "@whatisup/domain"
import { proto } from "@whiskeysockets/baileys"
import { Deferred, Effect, Exit, Fiber } from "effect"
import type { PgClient } from "@effect/sql-pg"
import { newCustomer } from "./support/admin.ts"
import { type ApiClient, waitForQr, waitForStatus } from "./support/api.ts"
import { sqlFor } from "./support/database.ts"
import { layerTestGateway, type RunningGateway, TestGateway } from "./support/gateway.ts"
import { request } from "./support/http.ts"
import { pause, waitUntil } from "./support/waits.ts"

/** Whoever writes to or from this number waits, inside the insert of its message, while the test holds the pause. */
const PAUSED = "+15550000000"
const pauseLock = 4712

/**
 * A message to or from `PAUSED` waits at its insert (a row trigger on an advisory lock) while the
 * test holds the pause: a batch that carries one holds up the intake's or the inbox's worker.
 */
const pausedInserts = (owner: PgClient.PgClient) =>
  Effect.gen(function* () {
    yield* Effect.acquireRelease(
      Effect.andThen(
        owner`CREATE FUNCTION pause_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN PERFORM pg_advisory_xact_lock_shared(${owner.literal(String(pauseLock))}); RETURN NEW; END $$`,
        owner`CREATE TRIGGER pause_inserts BEFORE INSERT ON messages FOR EACH ROW
          WHEN (NEW.chat = ${owner.literal(`'${PAUSED}'`)}) EXECUTE FUNCTION pause_inserts()`
      ).pipe(Effect.orDie),
      () =>
        Effect.andThen(
          owner`DROP TRIGGER pause_inserts ON messages`,
          owner`DROP FUNCTION pause_inserts()`
        ).pipe(Effect.orDie)
    )
    /** Holds the pause until the returned effect releases it. */
    const hold = Effect.gen(function* () {
      const held = yield* Deferred.make<void>()
      const released = yield* Deferred.make<void>()
      const holder = yield* Effect.forkScoped(
        owner
          .withTransaction(
            Effect.gen(function* () {
              yield* owner`SELECT pg_advisory_xact_lock(${pauseLock})`
              yield* Deferred.succeed(held, undefined)
              yield* Deferred.await(released)
            })
          )
          .pipe(Effect.orDie)
      )
      yield* Deferred.await(held)
      return Effect.andThen(Deferred.succeed(released, undefined), Fiber.join(holder))
    })
    const waitingOnPause = owner<{ n: number }>`
      SELECT count(*)::int AS n FROM pg_locks
      WHERE locktype = 'advisory' AND objid = ${pauseLock} AND NOT granted
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`.pipe(
      Effect.map((rows) => rows[0]!.n),
      Effect.orDie
    )
    return { hold, waitingOnPause }
  })

/**
 * Another writer of the same two channels, in a transaction of the test's own that takes them one
 * statement at a time in id order, as the gateway's writers of several channels do: `low` at once,
 * `high` when told. Answers whether its transaction committed (a deadlock would have failed it).
 */
const writerInIdOrder = (
  owner: PgClient.PgClient,
  mode: "FOR SHARE" | "FOR NO KEY UPDATE",
  low: ChannelId,
  high: ChannelId
) =>
  Effect.gen(function* () {
    const holdsLow = yield* Deferred.make<number>()
    const takeHigh = yield* Deferred.make<void>()
    const lockOne = (id: ChannelId) =>
      Effect.asVoid(owner`SELECT 1 FROM channels WHERE id = ${id} ${owner.literal(mode)}`)
    const writer = yield* Effect.forkScoped(
      Effect.exit(
        owner.withTransaction(
          Effect.gen(function* () {
            yield* lockOne(low)
            const [backend] = yield* owner<{ pid: number }>`SELECT pg_backend_pid() AS pid`
            yield* Deferred.succeed(holdsLow, backend!.pid)
            yield* Deferred.await(takeHigh)
            yield* lockOne(high)
          })
        )
      )
    )
    const pid = yield* Deferred.await(holdsLow)
    return {
      /** Until a statement of the gateway's waits for this writer. */
      waitedFor: waitUntil(
        "a statement of the gateway waits for the writer",
        owner<{ n: number }>`
          SELECT count(*)::int AS n FROM pg_stat_activity WHERE ${pid}::int = ANY(pg_blocking_pids(pid))`.pipe(
          Effect.map((rows) => rows[0]!.n > 0),
          Effect.orDie
        )
      ),
      takeHigh: Deferred.succeed(takeHigh, undefined),
      committed: Effect.map(Fiber.join(writer), Exit.isSuccess)
    }
  })

/** Three channels of one customer, `low` and `high` ordered by id, and whether they are connected. */
const threeChannels = (gateway: RunningGateway, client: ApiClient, connected: boolean) =>
  Effect.gen(function* () {
    const ids: Array<ChannelId> = []
    for (const name of ["blocker", "first", "second"]) {
      const { id } = yield* client.channels.create({ headers: {}, payload: { name } })
      if (connected) {
        yield* client.channels.connect({ params: { id }, payload: { method: "qr" } })
        yield* waitForQr(client, id)
        expect(yield* gateway.whatsapp.pair(id, `+1555000${7000 + ids.length}`)).toBe(true)
        yield* waitForStatus(client, id, "connected")
      }
      ids.push(id)
    }
    const [blocker, ...pair] = ids
    const [low, high] = pair.sort()
    // the older channel's row updated, so that it comes after the newer one in the table's order
    yield* client.channels.update({ params: { id: low! }, payload: { name: "updated" } })
    return { blocker: blocker!, low: low!, high: high! }
  })

/**
 * Runs `scenario` until the two writes it makes of `low` and `high` happened in one batch (their rows
 * share the transaction's time), as the test needs: the requests reach the gateway's queue while
 * its worker is held, but nothing outside shows when. At most `attempts` times.
 */
const untilBatched = <A extends { readonly batched: boolean }, E>(
  attempts: number,
  scenario: (settleMillis: number) => Effect.Effect<A, E>
) =>
  Effect.gen(function* () {
    for (let attempt = 1; ; attempt++) {
      const outcome = yield* scenario(100 * attempt)
      if (outcome.batched) return outcome
      if (attempt === attempts) {
        return yield* Effect.die(new Error(`the two writes never came in one batch in ${attempts} attempts`))
      }
    }
  })

layer(layerTestGateway({ LOG_LEVEL: "warn" }), { timeout: 120_000, excludeTestServices: true })(
  "channels locked in id order by whatever writes several at once",
  (it) => {
    /**
     * Sends to `high` and `low` written in one batch (the intake's workers held meanwhile) while another
     * writer holds `low` and then takes `high`: both answered 202, and the writer not deadlocked.
     */
    const sendsWhileWritten = (headers: (n: number) => Record<string, string>) =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const { client, key } = yield* newCustomer(gateway)
        const owner = yield* sqlFor(gateway.databaseUrl)
        const { hold, waitingOnPause } = yield* pausedInserts(owner)
        const { blocker, low, high } = yield* threeChannels(gateway, client, false)
        let n = 0
        const send = (channel: ChannelId, to: string) =>
          request(gateway.api, "POST", `/v1/channels/${channel}/messages`, {
            key,
            headers: headers(++n),
            body: { to, type: "text", text: { body: "hello" } }
          })

        const outcome = yield* untilBatched(5, (settleMillis) =>
          Effect.gen(function* () {
            const release = yield* hold
            // both of the intake's workers held, each by a send of its own to the paused number
            const blockers: Array<Fiber.Fiber<unknown>> = []
            for (let held = 1; held <= 2; held++) {
              blockers.push(yield* Effect.forkScoped(send(blocker, PAUSED)))
              yield* waitUntil(
                `${held} intake worker(s) held`,
                Effect.map(waitingOnPause, (waiting) => waiting === held)
              )
            }
            const sends = yield* Effect.forkScoped(
              Effect.all([send(high, "+15557654321"), send(low, "+15557654321")], { concurrency: 2 })
            )
            yield* pause(settleMillis)
            const writer = yield* writerInIdOrder(owner, "FOR NO KEY UPDATE", low, high)
            yield* release
            yield* Fiber.joinAll(blockers)
            yield* writer.waitedFor
            yield* writer.takeHigh
            const committed = yield* writer.committed
            const replies = yield* Fiber.join(sends)
            const accepted = replies.every((reply) => reply.status === 202)
            const times = accepted
              ? yield* owner<{ n: number }>`
                  SELECT count(DISTINCT created_at)::int AS n FROM messages
                  WHERE id IN ${owner.in(replies.map((reply) => reply.body.id))}`.pipe(Effect.orDie)
              : []
            return {
              committed,
              statuses: replies.map((reply) => reply.status),
              codes: replies.map((reply) => reply.body?.code),
              batched: !accepted || times[0]!.n === 1
            }
          }).pipe(Effect.scoped)
        )
        expect(outcome.committed).toBe(true)
        expect(outcome.codes).toEqual([undefined, undefined])
        expect(outcome.statuses).toEqual([202, 202])
      })

    it.effect(
      "a batch of sends to two channels, meanwhile written by another writer that takes them in id order, is answered 202: no deadlock",
      () => sendsWhileWritten(() => ({}))
    )

    it.effect(
      "the same with an Idempotency-Key on each send (the batch's transaction of several statements)",
      () => sendsWhileWritten((n) => ({ "idempotency-key": `lock-order-${n}` }))
    )

    it.effect(
      "inbound messages of two channels stored together, while a batch of sends share-locks the channels in id order, are stored: no deadlock",
      () =>
        Effect.gen(function* () {
          const gateway = yield* TestGateway
          const { client } = yield* newCustomer(gateway)
          const owner = yield* sqlFor(gateway.databaseUrl)
          const { hold, waitingOnPause } = yield* pausedInserts(owner)
          const { blocker, low, high } = yield* threeChannels(gateway, client, true)
          let n = 0
          const receive = (channel: ChannelId, from: string) =>
            gateway.whatsapp.receive(channel, [
              {
                whatsappId: `3EB0LOCKORDER${++n}`,
                from,
                chat: from,
                timestamp: new Date(),
                content: proto.Message.encode({ conversation: "hello" }).finish(),
                type: "notify"
              }
            ])

          const outcome = yield* untilBatched(5, (settleMillis) =>
            Effect.gen(function* () {
              const release = yield* hold
              // the inbox's worker held by a message from the paused number
              const held = yield* Effect.forkScoped(receive(blocker, PAUSED))
              yield* waitUntil(
                "the inbox's worker held",
                Effect.map(waitingOnPause, (waiting) => waiting === 1)
              )
              const first = n + 1
              const received = yield* Effect.forkScoped(
                Effect.all([receive(high, "+15557654321"), receive(low, "+15557654321")], {
                  concurrency: 2
                })
              )
              yield* pause(settleMillis)
              const sends = yield* writerInIdOrder(owner, "FOR SHARE", low, high)
              yield* release
              expect(yield* Fiber.join(held)).toBe(true)
              yield* sends.waitedFor
              yield* sends.takeHigh
              const committed = yield* sends.committed
              const stored = yield* Fiber.join(received)
              const times = yield* owner<{ n: number; stored: number }>`
                SELECT count(DISTINCT updated_at)::int AS n, count(*)::int AS stored FROM messages
                WHERE whatsapp_id IN ${owner.in([`3EB0LOCKORDER${first}`, `3EB0LOCKORDER${first + 1}`])}`.pipe(
                Effect.orDie
              )
              return {
                committed,
                stored,
                batched: times[0]!.stored === 2 ? times[0]!.n === 1 : true
              }
            }).pipe(Effect.scoped)
          )
          expect(outcome.committed).toBe(true)
          expect(outcome.stored).toEqual([true, true])
        })
    )
  }
)
