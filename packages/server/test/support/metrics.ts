import { Effect } from "effect"
import type { RunningGateway } from "./gateway.ts"
import { request } from "./http.ts"

/** The gateway's `/metrics` page, as Prometheus reads it. */
export const metricsText = (gateway: Pick<RunningGateway, "admin" | "adminToken">) =>
  Effect.map(request(gateway.admin, "GET", "/metrics", { key: gateway.adminToken }), (reply) => reply.text)

/** A metric's value on a `/metrics` page: the first series named `name` with all of `labels`; 0 if none. */
export const valueIn = (text: string, name: string, ...labels: ReadonlyArray<string>) => {
  for (const line of text.split("\n")) {
    const match = /^(?:whatisup_)?([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line)
    if (match?.[1] === name && labels.every((label) => (match[2] ?? "").includes(label)))
      return Number(match[3])
  }
  return 0
}
