import type { Message } from "@whatisup/domain"
import { HttpServerResponse } from "effect/http"

/**
 * A send's 202 answer, the message written as JSON in one step, not encoded again through the
 * endpoint's success schema: on the accept path, at thousands of sends a second, that cost about a
 * tenth of its CPU. A message's encoded form is the message itself (no field of `Message`
 * transforms: `message-answer.test.ts`), and the message answered is built field by field in the
 * schema's order (`renderMessage`); what the schema would have dropped or refused is what
 * `messages-accept.test.ts` looks for on the wire.
 */
export const acceptedAnswer = (message: Message) =>
  HttpServerResponse.text(JSON.stringify(message), { status: 202, contentType: "application/json" })
