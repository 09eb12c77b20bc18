import { Effect } from "effect"

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
    const response = await fetch(`${base}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body })
    })
    const text = await response.text()
    let parsed: unknown
    try {
      parsed = text === "" ? undefined : JSON.parse(text)
    } catch {
      parsed = undefined
    }
    return { status: response.status, headers: response.headers, text, body: parsed }
  })
