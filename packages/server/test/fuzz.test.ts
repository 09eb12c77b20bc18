import { expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import fc from "fast-check"
import { makeFuzzer } from "./fuzz/fuzzer.ts"
import type { OpenApiDocument } from "./fuzz/requests.ts"
import { auditRows, lastKeyUse, rowsOfCustomer } from "./fuzz/snapshot.ts"
import { sqlFor } from "./support/database.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { request } from "./support/http.ts"

/**
 * A fixed seed and a few hundred requests in `npm test`. A long run:
 * `WHATISUP_FUZZ_RUNS=20000 WHATISUP_FUZZ_SEED=$RANDOM npx vitest run packages/server/test/fuzz.test.ts`.
 * A failure prints the seed, the path and the shrunk request: WHATISUP_FUZZ_SEED and WHATISUP_FUZZ_PATH replay
 * it, with `-t "one request"` or `-t "at once"` to run only the property that failed.
 */
const runs = Number(process.env.WHATISUP_FUZZ_RUNS ?? 1000)
const seed = Number(process.env.WHATISUP_FUZZ_SEED ?? 1404)
const replay = process.env.WHATISUP_FUZZ_PATH
const parameters = { seed, ...(replay === undefined ? {} : { path: replay, endOnFailure: true }) }
// generous: a hang fails at 10 s per request, long before this
const timeout = 60_000 + runs * 1_000

/**
 * Operations that succeed only in a state the fuzz world seldom or never has (a valid connect aimed at
 * its idle channel rather than its connected one, a channel pairing by QR, a message with media): a
 * thousand requests may see them refused every time.
 */
const neverSucceeds = [
  "POST /v1/channels/{id}/connect",
  "GET /v1/channels/{id}/qr",
  "GET /v1/messages/{id}/media"
]

/** Requests sent at once: any few, or one request several times (races on one resource, one idempotency key). */
const batches = <A>(requests: fc.Arbitrary<A>) =>
  fc.oneof(
    fc.array(requests, { minLength: 2, maxLength: 6 }),
    fc
      .tuple(requests, fc.integer({ min: 2, max: 5 }), fc.array(requests, { maxLength: 2 }))
      .map(([repeated, times, others]) => [...Array.from({ length: times }, () => repeated), ...others])
  )

class Fuzzing extends Context.Service<
  Fuzzing,
  Effect.Success<ReturnType<typeof makeFuzzer>> & {
    readonly otherRowsBefore: Effect.Success<ReturnType<typeof rowsOfCustomer>>
    readonly auditBefore: Effect.Success<ReturnType<typeof auditRows>>
    readonly snapshotAt: Date
  }
>()("test/Fuzzing") {}

/** A gateway, the customers of the fuzz, and the bystander's rows and the audit log as they were before it. */
const layerFuzzing = Layer.effect(
  Fuzzing,
  Effect.gen(function* () {
    const gateway = yield* TestGateway
    const document = (yield* request(gateway.api, "GET", "/openapi.json")).body as OpenApiDocument
    const fuzzer = yield* makeFuzzer(gateway, document)
    const sql = yield* sqlFor(gateway.databaseUrl)
    const otherRowsBefore = yield* rowsOfCustomer(sql, fuzzer.bystander.customerId)
    const auditBefore = yield* auditRows(sql)
    return { ...fuzzer, otherRowsBefore, auditBefore, snapshotAt: new Date() }
  }).pipe(Effect.orDie)
).pipe(Layer.provideMerge(layerTestGateway({ WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32" })))

layer(layerFuzzing, { timeout: 120_000, excludeTestServices: true })(
  "the public API under fuzzing, every route read from /openapi.json",
  (it) => {
    it.effect(
      "one request at a time, valid or not, to any route: answered in time, never a 5xx, refusals are problems with a code, nothing of another customer's shown",
      () =>
        Effect.gen(function* () {
          const fuzzer = yield* Fuzzing
          expect(fuzzer.operations.length).toBeGreaterThan(30)
          const started = Date.now()
          yield* Effect.promise(() =>
            fc.assert(
              fc.asyncProperty(fuzzer.requests, async (generated) => {
                await fuzzer.ready()
                await fuzzer.exercise(generated)
              }),
              { ...parameters, numRuns: runs }
            )
          )
          console.info(
            `fuzz (seed ${seed}): ${runs} requests in ${(Date.now() - started) / 1000} s; ${fuzzer.summary()}`
          )
          // a run of the usual size reached every operation with a refusal, and past validation and the
          // key check to a success, except those few: a generator that made only refused requests fails here
          if (replay === undefined && runs >= 1000) {
            const reached = [...fuzzer.reached()]
            expect(reached.filter(([, classes]) => !classes.has("4xx")).map(([route]) => route)).toEqual([])
            const neverSucceeded = reached
              .filter(([, classes]) => !classes.has("2xx"))
              .map(([route]) => route)
            expect(neverSucceeds, "operations never answered with a success").toEqual(
              expect.arrayContaining(neverSucceeded)
            )
          }
        }),
      timeout
    )

    it.effect(
      "requests at once, on the same resources: each answer held to the rules a request sent alone is",
      () =>
        Effect.gen(function* () {
          const fuzzer = yield* Fuzzing
          yield* Effect.promise(() =>
            fc.assert(
              fc.asyncProperty(batches(fuzzer.requests), async (batch) => {
                await fuzzer.ready()
                await Promise.all(batch.map(fuzzer.exercise))
              }),
              { ...parameters, numRuns: Math.ceil(runs / 8) }
            )
          )
        }),
      timeout
    )

    it.effect("afterwards, no row of the other customer's has changed and the audit log has only grown", () =>
      Effect.gen(function* () {
        const { bystander, otherRowsBefore, auditBefore, snapshotAt } = yield* Fuzzing
        const sql = yield* sqlFor((yield* TestGateway).databaseUrl)
        expect(yield* rowsOfCustomer(sql, bystander.customerId)).toEqual(otherRowsBefore)
        // last_used_at is written a few seconds after a use: no use of the bystander's keys came after the snapshot
        const lastUse = yield* lastKeyUse(sql, bystander.customerId)
        expect(lastUse === null || lastUse.getTime() <= snapshotAt.getTime()).toBe(true)
        const auditAfter = yield* auditRows(sql)
        expect(auditAfter.size).toBeGreaterThan(auditBefore.size)
        const changed = [...auditBefore].filter(([id, row]) => auditAfter.get(id) !== row).map(([id]) => id)
        expect(changed, "audit rows changed or gone").toEqual([])
      }).pipe(Effect.scoped)
    )
  }
)
