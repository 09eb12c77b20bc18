import { describe, expect, it } from "@effect/vitest"
import type { Simulator } from "@whatisup/wa-simulator"
import { Effect } from "effect"
import type { WhatsAppTransport } from "../src/channels/transport.ts"
import { credsType } from "../src/whatsapp/authState.ts"
import {
  baileysTransport,
  type LoggedWrite,
  makeLoginStore,
  nextEvent,
  noMessages,
  tagged,
  testChannel
} from "./support/baileys.ts"
import { simulator } from "./support/simulator.ts"
import { staysTrue, waitFor, waitUntil } from "./support/waits.ts"

const phone = "15550002345"

type LoginStore = ReturnType<typeof makeLoginStore>

const connect = (transport: WhatsAppTransport["Service"], login: LoginStore) =>
  transport.connect({
    channelId: testChannel,
    pairing: { method: "qr" },
    authState: login.store,
    holdsLease: () => true,
    actor: login,
    ...noMessages
  })

/** The phone scans the first connection's QR; that connection ends with WhatsApp's 515, its login stored. */
const pair = (transport: WhatsAppTransport["Service"], sim: Simulator, login: LoginStore) =>
  Effect.scoped(
    Effect.gen(function* () {
      const connection = yield* connect(transport, login)
      const { qr } = yield* nextEvent("the QR", connection.events, tagged("Qr"))
      yield* Effect.promise(() => sim.scan(qr, { phoneNumber: phone }))
      const restart = yield* nextEvent("the 515 after the scan", connection.events, tagged("Close"))
      expect(restart.code).toBe(515)
    })
  )

/** Logs in with the stored login, and waits until the writes of the login (pre-keys among them) are done. */
const logIn = (transport: WhatsAppTransport["Service"], login: LoginStore) =>
  Effect.gen(function* () {
    const from = login.writes.length
    const connection = yield* connect(transport, login)
    yield* nextEvent("the connection opens with no QR", connection.events, tagged("Open"))
    return yield* waitFor(
      "the login's writes, pre-keys among them, are all done",
      Effect.sync(() => login.writes.slice(from)),
      (writes) =>
        writes.some((write) => preKeyIds(write).length > 0) && writes.every((w) => w.outcome !== undefined)
    )
  })

const preKeyIds = (write: LoggedWrite) =>
  write.changes.filter((c) => c.type === "pre-key" && c.value !== null).map((c) => Number(c.id))

const credsIn = (write: LoggedWrite) => write.changes.find((c) => c.type === credsType && c.id === "creds")

describe("a channel's login survives takeovers intact (issue 8, item 5)", () => {
  it.live(
    "item 5: creds writes are serialized: one at a time, landing in the order Baileys made them, so an older snapshot never overwrites a newer one",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        const transport = yield* baileysTransport(sim.url)
        // the first write of the login is slow: anything Baileys writes after it must wait for it
        let slow = -1
        const login = makeLoginStore({ delayMillis: (write) => (write.seq === slow ? 300 : 0) })
        yield* pair(transport, sim, login)
        slow = login.writes.length
        yield* Effect.scoped(logIn(transport, login))

        const creds = login.writes.filter((write) => credsIn(write) !== undefined)
        expect(creds.length, "the login wrote the credentials more than once").toBeGreaterThan(2)
        expect(login.mostAtOnce(), "writes running at once").toBe(1)
        expect(
          login.writes.map((write) => write.finished),
          "the order writes finished in"
        ).toEqual(login.writes.map((write) => write.seq))
        expect(login.values.get(`${credsType}/creds`), "the stored credentials are the newest").toBe(
          credsIn(creds.at(-1)!)!.value
        )
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "item 5: the pre-key counter and the pre-keys are committed together: each write of new pre-keys moves the stored counter past them",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        const transport = yield* baileysTransport(sim.url)
        const login = makeLoginStore()
        yield* pair(transport, sim, login)
        const writes = yield* Effect.scoped(logIn(transport, login))

        const withPreKeys = writes.filter((write) => preKeyIds(write).length > 0)
        expect(withPreKeys.length).toBeGreaterThan(0)
        for (const write of withPreKeys) {
          const creds = credsIn(write)
          expect(creds, `write ${write.seq} stores pre-keys and the credentials with them`).toBeDefined()
          const { nextPreKeyId } = JSON.parse(creds!.value!) as { nextPreKeyId: number }
          expect(nextPreKeyId).toBeGreaterThan(Math.max(...preKeyIds(write)))
        }
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "item 5: the first write the fence refuses ends the socket at once, and nothing is retried",
    () =>
      Effect.gen(function* () {
        const sim = yield* simulator
        const transport = yield* baileysTransport(sim.url)
        const login = makeLoginStore()
        yield* pair(transport, sim, login)
        // the channel went to another owner: from now on the store refuses every write
        login.fence()
        const from = login.writes.length
        yield* Effect.scoped(
          Effect.gen(function* () {
            const connection = yield* connect(transport, login)
            yield* nextEvent("the connection closes", connection.events, tagged("Close"))
          })
        )
        const refused = login.writes.slice(from)
        expect(refused.map((write) => write.outcome)).toEqual(["refused"])
        yield* waitUntil(
          "the simulator saw the socket close",
          Effect.sync(() =>
            sim.connectionHistory(phone).every((connection) => connection.closedAt !== undefined)
          )
        )
        // Baileys retries a failed commit every 3 s, 10 times: none of those reaches the store
        yield* staysTrue(
          "no write reaches the store after the first refused one",
          Effect.sync(() => login.writes.length === from + 1),
          { forMillis: 3500 }
        )
      }).pipe(Effect.scoped),
    120_000
  )
})
