import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import * as fc from "fast-check"
import { ApiKeyId, CustomerId, IdempotencyKey, KeyName, Plan } from "../src/index.ts"

const decodes = (schema: Schema.Codec<any, any>, value: unknown) =>
  Schema.decodeUnknownExit(schema)(value)._tag === "Success"

describe("domain schemas", () => {
  it("ids carry their kind's prefix and 26 lowercase letters or digits", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9a-z]{26}$/), (suffix) => {
        expect(decodes(CustomerId, `cus_${suffix}`)).toBe(true)
        expect(decodes(ApiKeyId, `cus_${suffix}`)).toBe(false)
        expect(decodes(CustomerId, `cus_${suffix.toUpperCase()}`)).toBe(/[a-z]/.test(suffix) ? false : true)
      })
    )
    fc.assert(
      fc.property(fc.string(), (anything) => {
        if (!/^cus_[0-9a-z]{26}$/.test(anything)) expect(decodes(CustomerId, anything)).toBe(false)
      })
    )
  })

  it("plans take whole numbers from 1 to a million", () => {
    const plan = {
      max_channels: 1,
      max_api_keys: 2,
      messages_per_minute: 60,
      api_requests_per_second: 50,
      pairing_codes_per_channel_per_hour: 3,
      pairing_codes_per_customer_per_day: 20,
      max_webhook_endpoints: 10
    }
    expect(decodes(Plan, plan)).toBe(true)
    for (const bad of [0, -1, 1.5, 1_000_001, "5", null]) {
      expect(decodes(Plan, { ...plan, max_channels: bad }), String(bad)).toBe(false)
    }
  })

  it("an Idempotency-Key is 1 to 255 visible ASCII characters", () => {
    expect(decodes(IdempotencyKey, "order-42/retry:1")).toBe(true)
    for (const bad of ["", "x".repeat(256), "has space", "tab\t", "émoji"]) {
      expect(decodes(IdempotencyKey, bad), JSON.stringify(bad)).toBe(false)
    }
  })

  it("names are printable text: any language and emoji, but no control characters or broken Unicode", () => {
    for (const good of ["ci", "Déploiement 🚀", "東京 key", "x".repeat(100)]) {
      expect(decodes(KeyName, good), good).toBe(true)
    }
    for (const bad of ["", "x".repeat(101), "a\u0000b", "tab\there", "\ud800", "end\udc00"]) {
      expect(decodes(KeyName, bad), JSON.stringify(bad)).toBe(false)
    }
  })

  it("names refuse bidirectional overrides and isolates and C1 controls, and keep right-to-left scripts", () => {
    for (const good of ["שלום", "مرحبا بالعالم", "a\u200fb", "no\u00a0break", "\u00ff"]) {
      expect(decodes(KeyName, good), JSON.stringify(good)).toBe(true)
    }
    const refused = [
      ...Array.from({ length: 5 }, (_, i) => 0x202a + i),
      ...Array.from({ length: 4 }, (_, i) => 0x2066 + i),
      ...Array.from({ length: 32 }, (_, i) => 0x80 + i)
    ]
    for (const code of refused) {
      const name = `invoice${String.fromCodePoint(code)}fdp.exe`
      expect(decodes(KeyName, name), `U+${code.toString(16)}`).toBe(false)
    }
  })
})
