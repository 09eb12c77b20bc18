import { describe, expect, it } from "@effect/vitest"
import { Message } from "@whatisup/domain"
import { Arbitrary, Effect, Schema } from "effect"
import { acceptedAnswer } from "../src/http/messageAnswers.ts"

const bodyOf = (response: ReturnType<typeof acceptedAnswer>) => {
  const body = response.body
  if (body._tag !== "Uint8Array") throw new Error(`expected a buffered body, got ${body._tag}`)
  return new TextDecoder().decode(body.body)
}

describe("a send's answer", () => {
  it.effect("is the message as the endpoint's schema encodes it, for any message", () =>
    Effect.gen(function* () {
      const encode = Schema.encodeSync(Message)
      const messages = yield* Arbitrary.sampleEffect(Arbitrary.schema(Message), { count: 500, seed: 14 })
      expect(messages.length).toBe(500)
      for (const message of messages) {
        const response = acceptedAnswer(message)
        expect(response.status).toBe(202)
        expect(response.headers["content-type"]).toBe("application/json")
        // the same JSON text: the same fields, in the same order, with the same values
        expect(bodyOf(response)).toBe(JSON.stringify(encode(message)))
      }
    })
  )
})
