import { Effect } from "effect"
import * as http from "node:http"

export interface Reply {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  readonly body: any
}

export interface RequestOptions {
  readonly key?: string
  readonly body?: unknown
  /** Sent as-is, for malformed bodies. */
  readonly rawBody?: string
  readonly headers?: Record<string, string>
  /** The local address to send from (any of 127.0.0.0/8 on Linux), to act as another client. */
  readonly from?: string
}

/**
 * One HTTP request to the gateway under test, as curl would send it. Only for what the typed client
 * (`apiClient` in api.ts) cannot send or does not show: malformed bodies, wrong content types, missing
 * or garbled keys, unknown routes, routes read from the OpenAPI document, and headers or bytes on the wire.
 */
export const request = (base: string, method: string, path: string, options: RequestOptions = {}) =>
  Effect.promise(async (): Promise<Reply> => {
    const headers: Record<string, string> = { ...options.headers }
    if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`
    let body: string | undefined
    if (options.rawBody !== undefined) body = options.rawBody
    else if (options.body !== undefined) {
      body = JSON.stringify(options.body)
      headers["content-type"] ??= "application/json"
    }
    const { status, responseHeaders, text } =
      options.from === undefined
        ? await viaFetch(`${base}${path}`, method, headers, body)
        : await viaNodeHttp(new URL(`${base}${path}`), method, headers, body, options.from)
    let parsed: unknown
    try {
      parsed = text === "" ? undefined : JSON.parse(text)
    } catch {
      parsed = undefined
    }
    return { status, headers: responseHeaders, text, body: parsed }
  })

const viaFetch = async (url: string, method: string, headers: Record<string, string>, body?: string) => {
  const response = await fetch(url, { method, headers, ...(body === undefined ? {} : { body }) })
  return { status: response.status, responseHeaders: response.headers, text: await response.text() }
}

// fetch cannot choose its local address
const viaNodeHttp = (
  url: URL,
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
  localAddress: string
) =>
  new Promise<{ status: number; responseHeaders: Headers; text: string }>((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        method,
        headers,
        localAddress
      },
      (res) => {
        let text = ""
        res.setEncoding("utf8")
        res.on("data", (chunk: string) => (text += chunk))
        res.on("end", () => {
          const responseHeaders = new Headers()
          for (const [name, value] of Object.entries(res.headers)) {
            if (value !== undefined)
              responseHeaders.set(name, Array.isArray(value) ? value.join(", ") : value)
          }
          resolve({ status: res.statusCode ?? 0, responseHeaders, text })
        })
      }
    )
    req.on("error", reject)
    req.end(body)
  })
