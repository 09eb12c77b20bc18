import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { newCustomer } from "./support/admin.ts"
import { baileysGateway, pairedChannel } from "./support/simulator.ts"
import { waitFor, waitUntil } from "./support/waits.ts"

const PHONE = "15551270001"
const CONTACT = "15557810001"

/** What libsignal says on the receiving side when a pre-key message begins a new session with it. */
const newSession = "Closing open session in favor of incoming prekey bundle"

describe("Signal sessions with a contact", () => {
  it.live(
    "are kept when the channel's socket asks for the contact's devices again: no session is replaced",
    () =>
      Effect.gen(function* () {
        // the simulator's phones (libsignal, in this process: the contact's and the channel's own) say
        // so when a session with them is replaced
        const replaced: Array<string> = []
        const warn = console.warn
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            console.warn = (...args: Array<unknown>) => {
              if (args.some((arg) => String(arg).includes(newSession))) replaced.push(String(args[0]))
              else warn(...args)
            }
          }),
          () => Effect.sync(() => void (console.warn = warn))
        )
        const { sim, gateway } = yield* baileysGateway({ LOG_LEVEL: "warn" })
        const { client } = yield* newCustomer(gateway, { plan: { messages_per_minute: 100_000 } })
        const channel = yield* pairedChannel(client, sim, PHONE)
        const sendAndDecrypt = (body: string) =>
          Effect.gen(function* () {
            const message = yield* client.messages.send({
              params: { id: channel },
              headers: {},
              payload: { to: `+${CONTACT}`, type: "text", text: { body } }
            })
            yield* waitUntil(
              `the contact's phone decrypted "${body}"`,
              Effect.sync(() => sim.received(CONTACT).some((got) => got.id === message.whatsapp_id)),
              { attempts: 600, everyMillis: 50 }
            )
          })

        yield* sendAndDecrypt("the first message opens the session")
        expect(replaced).toEqual([])

        // a new socket knows no device lists: its first send asks for the contact's again, as any
        // socket does every 5 minutes (Baileys' device cache)
        const connectedEvents = client.events
          .list({ query: { channel_id: channel, type: "channel.connected" } })
          .pipe(Effect.map((page) => page.data.length))
        yield* client.channels.restart({ params: { id: channel } })
        yield* waitFor("the channel is connected again", connectedEvents, (n) => n === 2, {
          attempts: 600,
          everyMillis: 50
        })
        yield* sendAndDecrypt("the second goes in the same session")
        expect(replaced).toEqual([])
      }).pipe(Effect.scoped),
    120_000
  )
})
