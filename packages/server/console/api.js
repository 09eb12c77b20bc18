// The public API as the console calls it: the pasted key as a bearer token, problem+json answers
// turned into errors that keep the API's own words.

/** An answer other than 2xx, with the problem the API gave. */
export class ApiError extends Error {
  constructor(status, problem) {
    const fields = (problem.errors ?? []).map((error) => `${error.path}: ${error.message}`)
    super([problem.detail ?? problem.title ?? `HTTP ${status}`, ...fields].join(" — "))
    this.status = status
    this.code = problem.code ?? null
  }
}

const problemOf = async (response) => {
  const text = await response.text()
  try {
    return new ApiError(response.status, JSON.parse(text))
  } catch {
    return new ApiError(response.status, { detail: text || response.statusText })
  }
}

/** The API with `key`: `call(method, path, body?)` answers the JSON (null for 204), `blob` a file. */
export const apiWith = (key) => {
  const send = async (method, path, body, accept) => {
    const headers = { authorization: `Bearer ${key}` }
    if (accept !== undefined) headers.accept = accept
    if (body !== undefined) headers["content-type"] = "application/json"
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body)
    })
    if (!response.ok) throw await problemOf(response)
    return response
  }
  return {
    call: async (method, path, body) => {
      const response = await send(method, path, body)
      return response.status === 204 ? null : response.json()
    },
    blob: async (path, accept) => (await send("GET", path, undefined, accept)).blob(),
    stream: (path, options) => streamEvents(key, path, options)
  }
}

/** A query string of the values that are set. */
export const query = (params) => {
  const set = Object.entries(params).filter(
    ([, value]) => value !== undefined && value !== null && value !== ""
  )
  return set.length === 0 ? "" : `?${new URLSearchParams(set).toString()}`
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const woken = () => {
      clearTimeout(timer)
      resolve()
    }
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", woken)
      resolve()
    }, ms)
    signal.addEventListener("abort", woken, { once: true })
  })

/**
 * Server-Sent Events read with fetch (EventSource cannot send the Authorization header): each event
 * to `onEvent`, the connection's state to `onState`; reconnects with Last-Event-ID, so nothing is
 * missed while it was away. Stops when `signal` aborts, or when the key is refused.
 */
const streamEvents = (key, path, { onEvent, onState, signal }) => {
  let lastEventId = null
  let retryMs = 3000
  const dispatch = (block) => {
    let event = "message"
    const data = []
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue
      const colon = line.indexOf(":")
      const field = colon === -1 ? line : line.slice(0, colon)
      const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "")
      if (field === "id") lastEventId = value
      else if (field === "event") event = value
      else if (field === "data") data.push(value)
      else if (field === "retry" && /^\d+$/.test(value)) retryMs = Number(value)
    }
    if (data.length > 0) onEvent({ type: event, ...JSON.parse(data.join("\n")) })
  }
  const run = async () => {
    while (!signal.aborted) {
      try {
        const headers = { authorization: `Bearer ${key}`, accept: "text/event-stream" }
        if (lastEventId !== null) headers["last-event-id"] = lastEventId
        const response = await fetch(path, { headers, signal })
        if (!response.ok) {
          const error = await problemOf(response)
          onState({ live: false, error: error.message })
          if (response.status === 401 || response.status === 403) return
        } else {
          onState({ live: true, error: null })
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
          let buffer = ""
          for (;;) {
            const { value, done } = await reader.read()
            if (done) break
            buffer = (buffer + value).replace(/\r\n?/g, "\n")
            let end
            while ((end = buffer.indexOf("\n\n")) !== -1) {
              dispatch(buffer.slice(0, end))
              buffer = buffer.slice(end + 2)
            }
          }
          onState({ live: false, error: "The live connection closed: reconnecting" })
        }
      } catch (error) {
        if (signal.aborted) return
        onState({ live: false, error: `The live connection failed (${error.message}): reconnecting` })
      }
      await sleep(retryMs, signal)
    }
  }
  run()
}
