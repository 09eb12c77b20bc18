import { HttpBody, type HttpServerRequest, HttpServerResponse } from "effect/http"
import * as zlib from "node:zlib"

/** The q-value the Accept-Encoding header gives `coding`: named, else through `*`; undefined when neither is. */
const qualityOf = (header: string, coding: string) => {
  let wildcard: number | undefined
  for (const part of header.split(",")) {
    const [name = "", ...params] = part.trim().toLowerCase().split(";")
    const q = Number(
      params
        .map((p) => p.trim())
        .find((p) => p.startsWith("q="))
        ?.slice(2) ?? 1
    )
    if (name.trim() === coding) return q
    if (name.trim() === "*") wildcard = q
  }
  return wildcard
}

export const acceptsGzip = (header: string | undefined) =>
  header !== undefined && (qualityOf(header, "gzip") ?? 0) > 0

/** Gzipped bodies by the body they were made from: a static document's answer carries the same body every time. */
const gzipped = new WeakMap<object, Uint8Array>()

/**
 * A static document (the docs page, several megabytes of HTML and script) gzipped when the client
 * takes gzip, compressed once and kept.
 */
export const compressed = (
  request: HttpServerRequest.HttpServerRequest,
  response: HttpServerResponse.HttpServerResponse
) => {
  const body = response.body
  if (response.status !== 200 || body._tag !== "Uint8Array") return response
  const varying = HttpServerResponse.setHeader(response, "vary", "accept-encoding")
  if (!acceptsGzip(request.headers["accept-encoding"])) return varying
  let bytes = gzipped.get(body)
  if (bytes === undefined) {
    bytes = zlib.gzipSync(body.body)
    gzipped.set(body, bytes)
  }
  return HttpServerResponse.setHeader(
    HttpServerResponse.setBody(varying, HttpBody.uint8Array(bytes, body.contentType)),
    "content-encoding",
    "gzip"
  )
}
