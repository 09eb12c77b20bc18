import { Effect } from "effect"
import fc from "fast-check"
import { inspect } from "node:util"
import { newCustomer } from "../support/admin.ts"
import type { RunningGateway } from "../support/gateway.ts"
import { type FuzzRequest, type OpenApiDocument, operationsOf, requestsTo } from "./requests.ts"
import { type Answer, NoAnswer, send, toWire, type WireRequest } from "./send.ts"
import { type Bystander, bystander, fuzzingCustomer, type World, worldOf } from "./world.ts"

/** A hang detector, not a performance bound: an answer slower than this is taken as never coming. */
export const answerBoundMillis = 10_000

/** The one party whose key is in the Authorization header, when exactly one is. */
const callerOf = (world: World, wire: WireRequest) => {
  const authorization = wire.headers.authorization ?? ""
  const found = world.parties.filter((party) => authorization.includes(party.key))
  return found.length === 1 ? found[0] : undefined
}

const cut = (text: string, length: number) =>
  text.length > length ? `${text.slice(0, length)}… (${text.length} chars)` : text

const described = (wire: WireRequest, answer?: Answer) =>
  inspect(
    {
      request: {
        method: wire.method,
        path: cut(wire.path, 500),
        headers: wire.headers,
        from: wire.from,
        body: wire.body === undefined ? undefined : cut(wire.body.toString("utf8"), 500)
      },
      answer:
        answer === undefined
          ? undefined
          : {
              status: answer.status,
              contentType: answer.headers["content-type"],
              body: cut(answer.text, 1000)
            }
    },
    { depth: 4, breakLength: 120 }
  )

/**
 * What every answer must be, whatever was asked: no 5xx; a 4xx is problem+json with its `code` and
 * status; nothing the caller may not see (another customer's ids, anything beyond a bound key's
 * channel, any key's plaintext) unless the request itself carried it.
 */
const faultsOf = (world: World, wire: WireRequest, answer: Answer) => {
  const faults: Array<string> = []
  if (answer.status >= 500) faults.push(`a ${answer.status}`)
  if (answer.status >= 400 && answer.status < 500) {
    const contentType = answer.headers["content-type"]
    if (contentType !== "application/problem+json")
      faults.push(`a ${answer.status} as ${contentType}, not problem+json`)
    let problem: any
    try {
      problem = JSON.parse(answer.text)
    } catch {
      faults.push(`a ${answer.status} whose body is not JSON`)
    }
    if (typeof problem?.code !== "string") faults.push(`a ${answer.status} with no code`)
    else if (problem.status !== answer.status)
      faults.push(`a ${answer.status} whose problem says ${problem.status}`)
  }
  const asked = `${wire.path} ${JSON.stringify(wire.headers)} ${wire.body?.toString("utf8") ?? ""}`
  const hidden = [...(callerOf(world, wire)?.mayNotSee ?? world.allIds), ...Object.values(world.keys)].filter(
    (secret) => !asked.includes(secret)
  )
  const shown = `${answer.text} ${JSON.stringify(answer.headers)}`
  const leaked = hidden.filter((secret) => shown.includes(secret))
  if (leaked.length > 0) faults.push(`the answer shows ${leaked.join(", ")}, which the caller may not see`)
  return faults
}

/** A request that removed or logged out something the world holds: the next one needs a fresh world. */
const spoilsTheWorld = (wire: WireRequest, answer: Answer) =>
  answer.status < 300 && (wire.method === "DELETE" || /\/logout(\?|$)/.test(wire.path))

/**
 * Sends generated requests to a gateway and judges each answer, keeping the world they name alive: when
 * a request deleted, revoked or logged out one of the fuzzing customer's resources, the next one gets a
 * new fuzzing customer. The bystander is made once, never acted on with its own key.
 */
export const makeFuzzer = (gateway: RunningGateway, document: OpenApiDocument) =>
  Effect.gen(function* () {
    const operations = operationsOf(document)
    const templates = new Map(operations.map((operation) => [operation.route, operation.path]))
    const other: Bystander = yield* bystander(gateway)
    const intruder = yield* newCustomer(gateway, { name: "Intruder" })
    let made = 1
    let world = worldOf(yield* fuzzingCustomer(gateway, made), other, intruder)
    let spoiled = false
    const statuses = new Map<string, number>()
    /** Each operation's answers by status class: what the run reached. */
    const reached = new Map(operations.map((operation) => [operation.route, new Set<string>()]))
    const base = new URL(gateway.api)

    /** Makes a new fuzzing customer when the last requests spoiled the world. */
    const ready = async () => {
      if (!spoiled) return
      made++
      const next = worldOf(await Effect.runPromise(fuzzingCustomer(gateway, made)), other, intruder, [
        ...world.retired,
        ...Object.values(world.own).flat()
      ])
      world = next
      spoiled = false
    }

    /** Sends one request and throws, describing it, when its answer is at fault (or never comes). */
    const exercise = async (generated: FuzzRequest) => {
      const wire = toWire(world, generated, templates.get(generated.route)!)
      let answer: Answer
      try {
        answer = await send(base, wire, answerBoundMillis)
      } catch (error) {
        const why = error instanceof NoAnswer ? "it hangs" : "no answer"
        throw new Error(`${why}: ${(error as Error).message}\n${described(wire)}`, { cause: error })
      }
      const bucket = `${Math.floor(answer.status / 100)}xx`
      statuses.set(bucket, (statuses.get(bucket) ?? 0) + 1)
      reached.get(generated.route)?.add(bucket)
      if (spoilsTheWorld(wire, answer)) spoiled = true
      const faults = faultsOf(world, wire, answer)
      if (faults.length > 0) throw new Error(`${faults.join("; ")}\n${described(wire, answer)}`)
    }

    return {
      operations,
      /** Any request to any operation of the document. */
      requests: fc.oneof(...operations.map((operation) => requestsTo(document, operation))),
      bystander: other,
      ready,
      exercise,
      /** The status classes each operation was answered with so far (empty: never sent). */
      reached: (): ReadonlyMap<string, ReadonlySet<string>> => reached,
      /** Answers by status class so far, and how many fuzzing customers were made. */
      summary: () =>
        `${[...statuses]
          .sort()
          .map(([k, n]) => `${k} ${n}`)
          .join(", ")}; ${made} fuzzing customers made`
    }
  })
