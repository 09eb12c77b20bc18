import {
  type ApiKeyCreated,
  ChannelStatus,
  type Customer,
  type CustomerNotFound,
  type OperatorUnauthorized,
  DeliveryStatus,
  type Message,
  MessageDirection,
  MessageStatus
} from "@whatisup/domain"
import { Console, Data, Effect, Option } from "effect"
import type { RpcClientError } from "effect/rpc"
import { Argument, Command, Flag } from "effect/cli"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { call } from "./adminClient.ts"

const json = Flag.Boolean("json").pipe(
  Flag.withDescription("print JSON instead of text"),
  Flag.withDefault(false)
)

const print = (asJson: boolean, value: unknown, text: () => string) =>
  Console.log(asJson ? JSON.stringify(value, null, 2) : text())

const describeCustomer = (c: Customer) =>
  [
    `${c.id}  ${c.name}  (${c.status})`,
    `  plan: ${c.plan.max_channels} channels, ${c.plan.max_api_keys} API keys, ` +
      `${c.plan.messages_per_minute} messages/min per channel, ${c.plan.api_requests_per_second} API requests/s (all keys together)`,
    `  pairing codes: ${c.plan.pairing_codes_per_channel_per_hour} per channel an hour, ` +
      `${c.plan.pairing_codes_per_customer_per_day} a day`,
    `  webhook endpoints: ${c.plan.max_webhook_endpoints}`,
    `  created: ${c.created_at}`
  ].join("\n")

const describeKey = (k: ApiKeyCreated) =>
  [
    `API key ${k.id}${k.channel_id ? ` (bound to ${k.channel_id})` : ""}:`,
    `  ${k.key}`,
    "This is the only time the key is shown: store it now."
  ].join("\n")

const customerId = Argument.String("customer-id").pipe(Argument.withDescription("a cus_ id"))

const planFlag = (name: string, description: string) =>
  Flag.Int(name).pipe(Flag.withDescription(description), Flag.optional)

const create = Command.make("create", { name: Argument.String("name"), json }, ({ name, json }) =>
  Effect.flatMap(
    call((client) => client.CreateCustomer({ name })),
    (created) =>
      print(
        json,
        created,
        () => `Created customer ${describeCustomer(created.customer)}\n\n${describeKey(created.api_key)}`
      )
  )
).pipe(Command.withDescription("create a customer and print its first API key once"))

const list = Command.make("list", { json }, ({ json }) =>
  Effect.flatMap(
    call((client) => client.ListCustomers()),
    (customers) =>
      print(json, customers, () =>
        customers.length === 0 ? "No customers yet." : customers.map(describeCustomer).join("\n")
      )
  )
).pipe(Command.withDescription("list customers"))

const get = Command.make("get", { id: customerId, json }, ({ id, json }) =>
  Effect.flatMap(
    call((client) => client.GetCustomer({ id: id as Customer["id"] })),
    (customer) => print(json, customer, () => describeCustomer(customer))
  )
).pipe(Command.withDescription("show one customer"))

const setStatus = (name: "suspend" | "resume") =>
  Command.make(name, { id: customerId, json }, ({ id, json }) =>
    Effect.flatMap(
      call((client) =>
        name === "suspend"
          ? client.SuspendCustomer({ id: id as Customer["id"] })
          : client.ResumeCustomer({ id: id as Customer["id"] })
      ),
      (customer) => print(json, customer, () => describeCustomer(customer))
    )
  ).pipe(
    Command.withDescription(
      name === "suspend" ? "suspend a customer: its keys stop working at once" : "resume a suspended customer"
    )
  )

const setPlan = Command.make(
  "set-plan",
  {
    id: customerId,
    maxChannels: planFlag("max-channels", "channels the customer may have"),
    maxApiKeys: planFlag("max-api-keys", "active API keys the customer may have"),
    messagesPerMinute: planFlag("messages-per-minute", "messages per minute per channel"),
    apiRps: planFlag("api-rps", "API requests per second, all the customer's keys together"),
    pairingCodesPerHour: planFlag("pairing-codes-per-hour", "connects by pairing code per channel an hour"),
    pairingCodesPerDay: planFlag("pairing-codes-per-day", "connects by pairing code per customer a day"),
    webhookEndpoints: planFlag("max-webhook-endpoints", "webhook endpoints the customer may have"),
    json
  },
  ({
    id,
    maxChannels,
    maxApiKeys,
    messagesPerMinute,
    apiRps,
    pairingCodesPerHour,
    pairingCodesPerDay,
    webhookEndpoints,
    json
  }) => {
    const plan = {
      ...Option.match(maxChannels, { onNone: () => ({}), onSome: (n) => ({ max_channels: n }) }),
      ...Option.match(maxApiKeys, { onNone: () => ({}), onSome: (n) => ({ max_api_keys: n }) }),
      ...Option.match(messagesPerMinute, { onNone: () => ({}), onSome: (n) => ({ messages_per_minute: n }) }),
      ...Option.match(apiRps, { onNone: () => ({}), onSome: (n) => ({ api_requests_per_second: n }) }),
      ...Option.match(pairingCodesPerHour, {
        onNone: () => ({}),
        onSome: (n) => ({ pairing_codes_per_channel_per_hour: n })
      }),
      ...Option.match(pairingCodesPerDay, {
        onNone: () => ({}),
        onSome: (n) => ({ pairing_codes_per_customer_per_day: n })
      }),
      ...Option.match(webhookEndpoints, { onNone: () => ({}), onSome: (n) => ({ max_webhook_endpoints: n }) })
    }
    if (Object.keys(plan).length === 0) {
      return Effect.fail<
        UsageError | OperatorUnauthorized | CustomerNotFound | RpcClientError.RpcClientError
      >(
        new UsageError({
          message:
            "set-plan needs at least one of --max-channels, --max-api-keys, --messages-per-minute, --api-rps, --pairing-codes-per-hour, --pairing-codes-per-day, --max-webhook-endpoints"
        })
      )
    }
    return Effect.flatMap(
      call((client) => client.SetPlan({ id: id as Customer["id"], plan })),
      (customer) => print(json, customer, () => describeCustomer(customer))
    )
  }
).pipe(Command.withDescription("change a customer's plan"))

export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

const customers = Command.make("customers").pipe(
  Command.withDescription("manage customers"),
  Command.withSubcommands([create, list, get, setStatus("suspend"), setStatus("resume"), setPlan])
)

const issue = Command.make(
  "issue",
  {
    customerId,
    channel: Flag.String("channel").pipe(
      Flag.withDescription("bind the key to this ch_ channel"),
      Flag.optional
    ),
    name: Flag.String("name").pipe(Flag.withDescription("a name to recognise the key by"), Flag.optional),
    json
  },
  ({ customerId, channel, name, json }) =>
    Effect.flatMap(
      call((client) =>
        client.IssueApiKey({
          customer_id: customerId as Customer["id"],
          ...Option.match(name, { onNone: () => ({}), onSome: (name) => ({ name }) }),
          ...Option.match(channel, {
            onNone: () => ({}),
            onSome: (channel) => ({ channel_id: channel as NonNullable<ApiKeyCreated["channel_id"]> })
          })
        })
      ),
      (key) => print(json, key, () => describeKey(key))
    )
).pipe(Command.withDescription("issue an API key for a customer and print it once"))

const keys = Command.make("keys").pipe(
  Command.withDescription("manage API keys"),
  Command.withSubcommands([issue])
)

const rotate = Command.make("rotate", { json }, ({ json }) =>
  Effect.gen(function* () {
    const result = yield* call((client) => client.RotateMasterKey())
    const added = yield* appendDevelopmentKey(result.key_id)
    yield* print(json, { ...result, added_key: added }, () =>
      [
        `Every stored secret is now encrypted under master key "${result.key_id}":`,
        ...result.stores.map((s) => `  ${s.store}: ${s.rewritten} rewritten`),
        ...(added
          ? [
              `Added master key "${added.id}" to ${added.file}.`,
              "Restart the gateway, then run `whatisup master-key rotate` again to re-encrypt under it."
            ]
          : [])
      ].join("\n")
    )
  })
).pipe(Command.withDescription("re-encrypt every stored secret under the newest master key"))

/** The gateway has not loaded the newest key of its development key ring yet: another key would pile up. */
export class RestartNeeded extends Data.TaggedError("RestartNeeded")<{ readonly message: string }> {}

/**
 * Development only (no WHATISUP_MASTER_KEYS): the data-dir key ring gains a new newest key, once the
 * gateway encrypts under the newest one it has (`inUse`); before its restart, a second run refuses.
 */
const appendDevelopmentKey = (inUse: string) =>
  Effect.suspend(() => {
    if (process.env.WHATISUP_MASTER_KEYS) return Effect.succeed(null)
    const file = path.resolve(process.env.WHATISUP_DATA_DIR ?? "./.data", "master-keys")
    if (!fs.existsSync(file)) return Effect.succeed(null)
    const ids = fs
      .readFileSync(file, "utf8")
      .split("\n")
      .map((line) => line.split(":")[0]!.trim())
      .filter((id) => id !== "")
    const newest = ids[ids.length - 1]
    if (newest !== undefined && newest !== inUse) {
      return Effect.fail(
        new RestartNeeded({
          message: `the gateway encrypts under master key "${inUse}", not "${newest}", the newest in ${file}: restart the gateway to load it, then run \`whatisup master-key rotate\` again`
        })
      )
    }
    let n = ids.length + 1
    while (ids.includes(`k${n}`)) n++
    const id = `k${n}`
    fs.appendFileSync(file, `${id}:${crypto.randomBytes(32).toString("base64")}\n`)
    return Effect.succeed({ id, file })
  })

const channelStatuses = ChannelStatus.literals

const listChannels = Command.make(
  "list",
  {
    node: Flag.String("node").pipe(
      Flag.withDescription("only channels this gateway node runs"),
      Flag.optional
    ),
    status: Flag.Literals("status", channelStatuses).pipe(
      Flag.withDescription("only channels in this status"),
      Flag.optional
    ),
    customer: Flag.String("customer").pipe(
      Flag.withDescription("only this customer's channels"),
      Flag.optional
    ),
    json
  },
  ({ node, status, customer, json }) =>
    Effect.flatMap(
      call((client) =>
        client.ListChannels({
          ...Option.match(node, { onNone: () => ({}), onSome: (node) => ({ node }) }),
          ...Option.match(status, { onNone: () => ({}), onSome: (status) => ({ status }) }),
          ...Option.match(customer, {
            onNone: () => ({}),
            onSome: (customer) => ({ customer_id: customer as Customer["id"] })
          })
        })
      ),
      (channels) =>
        print(json, channels, () =>
          channels.length === 0
            ? "No channels."
            : channels
                .map(
                  (c) =>
                    `${c.id}  ${c.name === null ? "-" : JSON.stringify(c.name)}  ` +
                    `${c.status}${c.status_reason ? ` (${c.status_reason})` : ""}  ` +
                    `${c.phone_number ?? "-"}  customer ${c.customer_id}  node ${c.node ?? "-"}`
                )
                .join("\n")
        )
    )
).pipe(
  Command.withDescription(
    "list channels: id, name, status, phone number, customer and the node that runs each"
  )
)

const channels = Command.make("channels").pipe(
  Command.withDescription("see the channels every gateway node runs"),
  Command.withSubcommands([listChannels])
)

const listDeliveries = Command.make(
  "list",
  {
    customer: Flag.String("customer").pipe(
      Flag.withDescription("the customer whose deliveries to list (cus_...)")
    ),
    status: Flag.Literals("status", DeliveryStatus.literals).pipe(
      Flag.withDescription("only deliveries in this status"),
      Flag.optional
    ),
    limit: Flag.Int("limit").pipe(
      Flag.withDescription("how many, newest first (1 to 1000)"),
      Flag.withDefault(100)
    ),
    json
  },
  ({ customer, status, limit, json }) =>
    Effect.flatMap(
      call((client) =>
        client.ListDeliveries({
          customer_id: customer as Customer["id"],
          limit,
          ...Option.match(status, { onNone: () => ({}), onSome: (status) => ({ status }) })
        })
      ),
      (deliveries) =>
        print(json, deliveries, () =>
          deliveries.length === 0
            ? "No deliveries."
            : deliveries
                .map(
                  (d) =>
                    `${d.id}  ${d.status}  ${d.event_type}  endpoint ${d.endpoint_id}  ` +
                    `${d.attempts} attempt${d.attempts === 1 ? "" : "s"}  ` +
                    `${d.next_attempt_at === null ? "" : `next ${d.next_attempt_at}  `}created ${d.created_at}`
                )
                .join("\n")
        )
    )
).pipe(
  Command.withDescription(
    "list a customer's webhook deliveries, newest first: id, status, event type, endpoint, attempts, next attempt"
  )
)

const deliveries = Command.make("deliveries").pipe(
  Command.withDescription("see a customer's webhook deliveries"),
  Command.withSubcommands([listDeliveries])
)

const listMessages = Command.make(
  "list",
  {
    channel: Flag.String("channel").pipe(Flag.withDescription("the channel whose messages to list (ch_...)")),
    direction: Flag.Literals("direction", MessageDirection.literals).pipe(
      Flag.withDescription("only inbound or only outbound messages"),
      Flag.optional
    ),
    status: Flag.Literals("status", MessageStatus.literals).pipe(
      Flag.withDescription("only messages in this status"),
      Flag.optional
    ),
    limit: Flag.Int("limit").pipe(
      Flag.withDescription("how many, newest first (1 to 1000)"),
      Flag.withDefault(100)
    ),
    json
  },
  ({ channel, direction, status, limit, json }) =>
    Effect.flatMap(
      call((client) =>
        client.ListMessages({
          channel_id: channel as Message["channel_id"],
          limit,
          ...Option.match(direction, { onNone: () => ({}), onSome: (direction) => ({ direction }) }),
          ...Option.match(status, { onNone: () => ({}), onSome: (status) => ({ status }) })
        })
      ),
      (messages) =>
        print(json, messages, () =>
          messages.length === 0
            ? "No messages."
            : messages
                .map(
                  (m) =>
                    `${m.id}  ${m.direction}  ${m.direction === "outbound" ? `to ${m.to}` : `from ${m.from}`}  ` +
                    `${m.type}  ${m.status}${m.failure === null ? "" : ` (${m.failure.reason})`}  ` +
                    `wa ${m.whatsapp_id}  created ${m.created_at}`
                )
                .join("\n")
        )
    )
).pipe(
  Command.withDescription(
    "list a channel's messages, newest first: id, direction, number, type, status (and why it failed), WhatsApp id"
  )
)

const messages = Command.make("messages").pipe(
  Command.withDescription("see a channel's messages, sent and received"),
  Command.withSubcommands([listMessages])
)

const masterKey = Command.make("master-key").pipe(
  Command.withDescription("manage the master key ring"),
  Command.withSubcommands([rotate])
)

export const whatisup = Command.make("whatisup").pipe(
  Command.withDescription("Operate a WhatIsUp gateway through its admin listener"),
  Command.withSubcommands([customers, keys, channels, messages, deliveries, masterKey])
)
