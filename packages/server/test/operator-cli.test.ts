import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { apiClient, waitForStatus } from "./support/api.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"
import { waitUntil } from "./support/waits.ts"
import { runCli } from "./support/process.ts"
import { newCustomer } from "./support/admin.ts"
import { answer, startReceiver } from "./support/receiver.ts"

const cliEnvironment = Effect.gen(function* () {
  const gateway = yield* TestGateway
  return { WHATISUP_ADMIN_URL: gateway.admin, WHATISUP_ADMIN_TOKEN: gateway.adminToken }
})

layer(layerTestGateway({ WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32" }), {
  timeout: 120_000,
  excludeTestServices: true
})("the whatisup CLI against a running gateway", (it) => {
  it.effect("customers create prints the first key once, and the key works with the public API", () =>
    Effect.gen(function* () {
      const { api } = yield* TestGateway
      const env = yield* cliEnvironment
      const text = yield* runCli(["customers", "create", "Acme Corp"], env)
      expect(text.code).toBe(0)
      expect(text.stderr).toBe("")
      expect(text.stdout).toMatch(/^Created customer cus_[0-9a-z]{26} {2}Acme Corp {2}\(active\)/)
      const key = /(wiu_[A-Za-z0-9_-]{43})/.exec(text.stdout)?.[1]
      expect(key).toBeDefined()
      expect(text.stdout).toContain("only time the key is shown")
      const me = yield* (yield* apiClient(api, key!)).me.get({})
      expect(me.customer.name).toBe("Acme Corp")
    })
  )

  it.effect("list, get, set-plan, suspend, resume and keys issue, in text and --json", () =>
    Effect.gen(function* () {
      const { api } = yield* TestGateway
      const env = yield* cliEnvironment
      const created = JSON.parse((yield* runCli(["customers", "create", "Globex", "--json"], env)).stdout)
      const id = created.customer.id as string

      const listed = JSON.parse((yield* runCli(["customers", "list", "--json"], env)).stdout)
      expect(listed.map((c: { id: string }) => c.id)).toContain(id)
      expect((yield* runCli(["customers", "list"], env)).stdout).toContain(`${id}  Globex  (active)`)

      const fetched = JSON.parse((yield* runCli(["customers", "get", id, "--json"], env)).stdout)
      expect(fetched).toEqual(created.customer)

      const planned = yield* runCli(
        [
          "customers",
          "set-plan",
          id,
          "--max-channels",
          "7",
          "--api-rps",
          "9",
          "--pairing-codes-per-hour",
          "2",
          "--pairing-codes-per-day",
          "5",
          "--json"
        ],
        env
      )
      expect(planned.code).toBe(0)
      expect(JSON.parse(planned.stdout).plan).toEqual({
        ...created.customer.plan,
        max_channels: 7,
        api_requests_per_second: 9,
        pairing_codes_per_channel_per_hour: 2,
        pairing_codes_per_customer_per_day: 5
      })

      const issued = JSON.parse(
        (yield* runCli(["keys", "issue", id, "--name", "deploy", "--json"], env)).stdout
      )
      expect(issued.key).toMatch(/^wiu_/)

      expect(issued.name).toBe("deploy")
      const client = yield* apiClient(api, issued.key)
      expect((yield* client.me.get({})).key_id).toBe(issued.id)

      expect((yield* runCli(["customers", "suspend", id], env)).stdout).toContain("(suspended)")
      expect(yield* Effect.flip(client.me.get({}))).toMatchObject({
        _tag: "Unauthorized",
        code: "customer_suspended"
      })
      expect((yield* runCli(["customers", "resume", id], env)).stdout).toContain("(active)")
      expect((yield* client.me.get({})).customer.status).toBe("active")

      const audit = yield* client.audit.list({ query: {} })
      expect(audit.data.map((e) => [e.action, e.actor.type])).toEqual([
        ["customer.resumed", "operator"],
        ["customer.suspended", "operator"],
        ["api_key.created", "operator"],
        ["customer.plan_changed", "operator"],
        ["api_key.created", "operator"],
        ["customer.created", "operator"]
      ])

      // what the operator is told when a key cannot be issued
      const unbound = yield* runCli(["keys", "issue", id, "--channel", "ch_00000000000000000000000000"], env)
      expect(unbound.code).not.toBe(0)
      expect(unbound.stderr).toMatch(
        new RegExp(`^whatisup: no channel ch_00000000000000000000000000 for customer ${id}\n$`)
      )
      yield* runCli(["customers", "set-plan", id, "--max-api-keys", "2"], env)
      const overLimit = yield* runCli(["keys", "issue", id], env)
      expect(overLimit.code).not.toBe(0)
      expect(overLimit.stderr).toMatch(/^whatisup: The plan allows 2 active API keys\n$/)
    })
  )

  it.effect(
    "master-key rotate re-encrypts under the newest key; in development it adds a key, and a second run before the restart refuses with one line",
    () =>
      Effect.gen(function* () {
        const { dataDir } = yield* TestGateway
        // the gateway under test has no WHATISUP_MASTER_KEYS: its key ring is the data dir's
        const env = { ...(yield* cliEnvironment), WHATISUP_DATA_DIR: dataDir }
        const keysFile = path.join(dataDir, "master-keys")
        const rotated = yield* runCli(["master-key", "rotate", "--json"], env)
        expect(rotated.code).toBe(0)
        const result = JSON.parse(rotated.stdout)
        expect(result.key_id).toBe("k1")
        expect(result.stores.map((s: { store: string }) => s.store)).toContain("key_ring_canary.ciphertext")
        expect(result.added_key).toEqual({ id: "k2", file: keysFile })
        const keys = fs.readFileSync(keysFile, "utf8")
        expect(keys).toMatch(/^k1:.*\nk2:.*\n$/)

        const again = yield* runCli(["master-key", "rotate"], env)
        expect(again.code).not.toBe(0)
        expect(again.stderr).toBe(
          `whatisup: the gateway encrypts under master key "k1", not "k2", the newest in ${keysFile}: restart the gateway to load it, then run \`whatisup master-key rotate\` again\n`
        )
        expect(fs.readFileSync(keysFile, "utf8")).toBe(keys)
      })
  )

  it.effect("deliveries list shows a customer's failed deliveries, in text and --json", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const env = yield* cliEnvironment
      const receiver = yield* startReceiver(() => answer(410))
      const { client, customerId } = yield* newCustomer(gateway, { name: "Gone Receiver" })
      const endpoint = yield* client.webhooks.create({ headers: {}, payload: { url: receiver.url } })
      const test = yield* client.webhooks.test({ params: { id: endpoint.id } })
      yield* waitUntil(
        "the delivery failed",
        Effect.map(client.webhooks.delivery({ params: { id: test.id } }), (d) => d.status === "failed")
      )
      const text = yield* runCli(["deliveries", "list", "--customer", customerId, "--status", "failed"], env)
      expect(text.code).toBe(0)
      expect(text.stdout).toContain(`${test.id}  failed  webhook.test  endpoint ${endpoint.id}  1 attempt`)
      const listed = JSON.parse(
        (yield* runCli(
          ["deliveries", "list", "--customer", customerId, "--status", "succeeded", "--json"],
          env
        )).stdout
      )
      expect(listed).toEqual([])
      const none = yield* runCli(["deliveries", "list", "--customer", "cus_00000000000000000000000000"], env)
      expect(none.code).not.toBe(0)
      expect(none.stderr).toMatch(/^whatisup: no customer cus_00000000000000000000000000\n$/)
    }).pipe(Effect.scoped)
  )

  it.effect("messages list shows a channel's messages, filtered, in text and --json", () =>
    Effect.gen(function* () {
      const gateway = yield* TestGateway
      const env = yield* cliEnvironment
      const { client } = yield* newCustomer(gateway, { name: "Messaging" })
      const channel = yield* client.channels.create({ headers: {}, payload: {} })
      const sent = yield* client.messages.send({
        params: { id: channel.id },
        headers: {},
        payload: { to: "+15557654321", type: "text", text: { body: "hello" } }
      })
      const text = yield* runCli(["messages", "list", "--channel", channel.id], env)
      expect(text.code).toBe(0)
      expect(text.stdout).toContain(
        `${sent.id}  outbound  to +15557654321  text  queued  wa ${sent.whatsapp_id}`
      )
      const inbound = JSON.parse(
        (yield* runCli(
          ["messages", "list", "--channel", channel.id, "--direction", "inbound", "--json"],
          env
        )).stdout
      )
      expect(inbound).toEqual([])
      const none = yield* runCli(["messages", "list", "--channel", "ch_00000000000000000000000000"], env)
      expect(none.code).not.toBe(0)
      expect(none.stderr).toMatch(/^whatisup: no channel ch_00000000000000000000000000\n$/)
    }).pipe(Effect.scoped)
  )

  it.effect("mistakes get one clear line and a non-zero exit, never a stack trace", () =>
    Effect.gen(function* () {
      const { admin } = yield* TestGateway
      const env = yield* cliEnvironment
      const cases: Array<[Array<string>, Record<string, string>, RegExp]> = [
        [
          ["customers", "list"],
          { ...env, WHATISUP_ADMIN_TOKEN: "x".repeat(40) },
          /^whatisup: the gateway refused the operator token from WHATISUP_ADMIN_TOKEN\n$/
        ],
        [
          ["customers", "list"],
          { ...env, WHATISUP_ADMIN_URL: "http://127.0.0.1:9" },
          /^whatisup: cannot reach the gateway's admin listener at http:\/\/127\.0\.0\.1:9/
        ],
        [
          ["customers", "get", "cus_00000000000000000000000000"],
          env,
          /^whatisup: no customer cus_00000000000000000000000000\n$/
        ],
        [["customers", "get", "acme"], env, /^whatisup: .*cus_/],
        [
          ["customers", "set-plan", "cus_00000000000000000000000000"],
          env,
          /^whatisup: set-plan needs at least one of/
        ],
        [
          ["customers", "set-plan", "cus_00000000000000000000000000", "--max-channels", "0"],
          env,
          /^whatisup: .*max_channels/
        ]
      ]
      for (const [args, environment, expected] of cases) {
        const run = yield* runCli(args, environment)
        expect(run.code, args.join(" ")).not.toBe(0)
        expect(run.stderr, args.join(" ")).toMatch(expected)
        expect(run.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1)
        expect(run.stderr + run.stdout).not.toMatch(/\n\s+at /)
      }
      expect(admin).toMatch(/^http:/)
    })
  )

  it.effect(
    "channels list shows every channel with its name and the node that runs it, filtered by node and status",
    () =>
      Effect.gen(function* () {
        const { api, config, whatsapp } = yield* TestGateway
        const env = yield* cliEnvironment
        const created = JSON.parse(
          (yield* runCli(["customers", "create", "Channel Owner", "--json"], env)).stdout
        )
        const client = yield* apiClient(api, created.api_key.key)
        const running = (yield* client.channels.create({ headers: {}, payload: { name: "running" } })).id
        const idle = (yield* client.channels.create({ headers: {}, payload: { name: "idle" } })).id
        yield* client.channels.connect({ params: { id: running }, payload: { method: "qr" } })
        yield* waitUntil(
          "the channel's connection is open",
          Effect.sync(() => whatsapp.isOpen(running))
        )
        yield* whatsapp.pair(running, "+15551112222")
        yield* waitForStatus(client, running, "connected")
        yield* waitUntil(
          "the CLI lists the channel on this node",
          Effect.map(runCli(["channels", "list", "--node", config.nodeId, "--json"], env), (run) =>
            JSON.parse(run.stdout).some((c: { id: string }) => c.id === running)
          )
        )
        const all = JSON.parse(
          (yield* runCli(["channels", "list", "--customer", created.customer.id, "--json"], env)).stdout
        )
        expect(all.map((c: { id: string }) => c.id).sort()).toEqual([running, idle].sort())
        const onNode = JSON.parse(
          (yield* runCli(["channels", "list", "--node", config.nodeId, "--json"], env)).stdout
        )
        expect(onNode.map((c: { id: string }) => c.id)).toContain(running)
        expect(onNode.map((c: { id: string }) => c.id)).not.toContain(idle)
        const connected = yield* runCli(["channels", "list", "--status", "connected"], env)
        expect(connected.stdout).toContain(
          `${running}  "running"  connected  +15551112222  customer ${created.customer.id}  node ${config.nodeId}`
        )
        expect(connected.stdout).not.toContain(idle)
        const resting = yield* runCli(["channels", "list", "--status", "created"], env)
        expect(resting.stdout).toContain(
          `${idle}  "idle"  created  -  customer ${created.customer.id}  node -`
        )
        const bad = yield* runCli(["channels", "list", "--status", "sleeping"], env)
        expect(bad.code).not.toBe(0)
      })
  )
})
