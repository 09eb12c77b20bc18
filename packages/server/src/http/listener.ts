import { createServer, STATUS_CODES, type Server } from "node:http"
import type { Socket } from "node:net"
import { problemDetails } from "./problems.ts"

/** What Node's HTTP parser refused, by its error code, as the problem the client is answered. */
const refusalOf = (code: string | undefined) => {
  switch (code) {
    case "HPE_HEADER_OVERFLOW":
      return {
        status: 431,
        code: "request_header_fields_too_large",
        title: "The request's headers are too large",
        detail: "The request line and headers together are limited to 16 KiB"
      }
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return {
        status: 408,
        code: "request_timeout",
        title: "The request took too long to arrive"
      }
    default:
      return {
        status: 400,
        code: "malformed_request",
        title: "The request is not valid HTTP/1.1",
        detail: "The request line, a header or the body's framing could not be read"
      }
  }
}

const problemOnTheWire = (refusal: ReturnType<typeof refusalOf>) => {
  const body = JSON.stringify(problemDetails(refusal))
  return (
    `HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status]}\r\n` +
    `content-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
    `connection: close\r\n\r\n${body}`
  )
}

/**
 * The public listener: a Node HTTP server whose own refusals (headers beyond 16 KiB, a request that is
 * not HTTP, a request too slow to arrive) are answered as problem+json with a `code`, as everything the
 * API answers is, where Node would answer a bare status line.
 */
export const createPublicListener = (): Server => {
  const server = createServer()
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Socket) => {
    // as Node's own handler: answer only where no answer of this connection has begun
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage
    if (socket.writable && (inFlight === undefined || inFlight === null || !inFlight.headersSent)) {
      socket.write(problemOnTheWire(refusalOf(error.code)))
    }
    socket.destroy(error)
  })
  return server
}
