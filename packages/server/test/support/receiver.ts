import { Effect } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

/** One request the receiver got, as it arrived. */
export interface Received {
  readonly at: number
  readonly path: string
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

/** What the receiver does with a request: answer (after a delay), hang, or cut the connection. */
export type Behaviour =
  | {
      readonly _tag: "Answer"
      readonly status: number
      readonly headers?: Record<string, string>
      readonly body?: string
      readonly delayMillis?: number
    }
  | { readonly _tag: "Hang" }
  | { readonly _tag: "Reset" }

export const answer = (
  status: number,
  options: Omit<Extract<Behaviour, { _tag: "Answer" }>, "_tag" | "status"> = {}
): Behaviour => ({
  _tag: "Answer",
  status,
  ...options
})

/**
 * A customer's webhook receiver on 127.0.0.1 (the edge of the process a test may fake): it records
 * every request, and `respond` decides each answer; in flight counts requests not yet answered by
 * webhook-id, and `overlaps` names any id that was in flight twice at once.
 */
export const startReceiver = (
  respond: (received: Received) => Behaviour = () => answer(200, { body: "ok" })
) =>
  Effect.acquireRelease(
    Effect.promise(
      () =>
        new Promise<{
          readonly url: string
          readonly received: Array<Received>
          readonly overlaps: Set<string>
          setBehaviour: (next: (received: Received) => Behaviour) => void
          readonly server: http.Server
        }>((resolve) => {
          const received: Array<Received> = []
          const inFlight = new Map<string, number>()
          const overlaps = new Set<string>()
          let behaviour = respond
          const server = http.createServer((request, response) => {
            const chunks: Array<Buffer> = []
            request.on("data", (chunk: Buffer) => chunks.push(chunk))
            request.on("end", () => {
              const entry: Received = {
                at: Date.now(),
                path: request.url ?? "/",
                headers: request.headers,
                body: Buffer.concat(chunks).toString("utf8")
              }
              received.push(entry)
              const id = String(request.headers["webhook-id"] ?? "")
              const count = (inFlight.get(id) ?? 0) + 1
              inFlight.set(id, count)
              if (count > 1) overlaps.add(id)
              const done = () => inFlight.set(id, (inFlight.get(id) ?? 1) - 1)
              const what = behaviour(entry)
              switch (what._tag) {
                case "Hang":
                  response.on("close", done)
                  return
                case "Reset":
                  done()
                  request.socket.destroy()
                  return
                case "Answer": {
                  const send = () => {
                    done()
                    response.writeHead(what.status, what.headers ?? {})
                    response.end(what.body ?? "")
                  }
                  if (what.delayMillis === undefined) send()
                  else setTimeout(send, what.delayMillis)
                }
              }
            })
          })
          server.listen(0, "127.0.0.1", () => {
            const { port } = server.address() as AddressInfo
            resolve({
              url: `http://127.0.0.1:${port}`,
              received,
              overlaps,
              setBehaviour: (next) => {
                behaviour = next
              },
              server
            })
          })
        })
    ),
    ({ server }) =>
      Effect.promise(
        () =>
          new Promise<void>((resolve) => {
            server.closeAllConnections()
            server.close(() => resolve())
          })
      )
  )
