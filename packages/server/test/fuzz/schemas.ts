import fc from "fast-check"

/** The part of JSON Schema the OpenAPI document uses. */
export interface JsonSchema {
  readonly $ref?: string
  readonly type?: string
  readonly enum?: ReadonlyArray<unknown>
  readonly anyOf?: ReadonlyArray<JsonSchema>
  readonly oneOf?: ReadonlyArray<JsonSchema>
  readonly allOf?: ReadonlyArray<JsonSchema>
  readonly properties?: Record<string, JsonSchema>
  readonly required?: ReadonlyArray<string>
  readonly additionalProperties?: boolean | JsonSchema
  readonly items?: JsonSchema
  readonly pattern?: string
  readonly minLength?: number
  readonly maxLength?: number
  readonly minimum?: number
  readonly maximum?: number
  readonly minItems?: number
  readonly maxItems?: number
  readonly uniqueItems?: boolean
  readonly examples?: ReadonlyArray<unknown>
  readonly description?: string
}

/**
 * A placeholder for an id, resolved when the request is sent: `{{own:ch:0}}` is the caller's first
 * channel, `{{other:ch:0}}` another customer's, `{{unknown:ch:1}}` an id of the kind that exists nowhere.
 * Requests are generated as data (so fast-check can shrink and print them) while the ids they name are
 * the ones the gateway holds at that moment.
 */
export const idRef = (owner: "own" | "other" | "unknown", kind: string, index: number) =>
  `{{${owner}:${kind}:${index}}}`

/** The id kinds a pattern names (`^ch_[0-9a-z]{26}$` → ch), for patterns of branded ids. */
export const idKindsOf = (pattern: string | undefined) =>
  pattern === undefined ? [] : [...pattern.matchAll(/([a-z]+)_\[0-9a-z\]\{26\}/g)].map((m) => m[1]!)

const idOfKind = (kind: string) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.nat(3).map((i) => idRef("own", kind, i)) },
    { weight: 3, arbitrary: fc.nat(3).map((i) => idRef("other", kind, i)) },
    { weight: 1, arbitrary: fc.nat(2).map((i) => idRef("unknown", kind, i)) }
  )

/** Strings that have broken parsers, routers, databases and loggers before. */
const notorious = [
  "",
  " ",
  ".",
  "..",
  "../..",
  "/",
  "//",
  "\\",
  "%",
  "%2F",
  "%2e%2e",
  "%00",
  "%ZZ",
  "%E0%A4%A",
  "%C0%AF",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "\udfff\ud800",
  "🙂",
  "\u202e",
  "\ufeff",
  "\r\n",
  "null",
  "undefined",
  "NaN",
  "Infinity",
  "-1",
  "0",
  "-0",
  "1e999",
  "9007199254740993",
  "true",
  "[]",
  "{}",
  "__proto__",
  "constructor",
  "' OR 1=1 --",
  "'; DROP TABLE channels; --",
  "$1",
  "${jndi:ldap://x}",
  "<script>",
  "ch_",
  "ch_01M8MDM38WDVRZ8HR11E5WQSDM",
  "ch_01m8mdm38wdvrz8hr11e5wqsd",
  "ch_01m8mdm38wdvrz8hr11e5wqsdmm",
  "ch_zzzzzzzzzzzzzzzzzzzzzzzzzz",
  "msg_01m8mdm3h6z9q2w4e6r8t0y2u4 ",
  "evt_00000000000000000000000000",
  "2026-02-30T00:00:00Z",
  "0000-01-01T00:00:00Z",
  "9999-12-31T23:59:59.999999999Z",
  "275760-09-13T00:00:00.001Z",
  "http://127.0.0.1:9/fuzz",
  "http://169.254.169.254/latest/meta-data",
  "http://[::ffff:127.0.0.1]/",
  "http://user:pass@127.0.0.1:9/",
  "ftp://127.0.0.1/",
  "javascript:alert(1)",
  "https://example.invalid/hook"
]

/** Any string, with a bias for the notorious ones and for sizes at and beyond the limits. */
export const oddString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...notorious) },
  { weight: 2, arbitrary: fc.string() },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme" }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary" }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom("a", "é", "🙂", "\u0000", "%"), fc.constantFrom(101, 256, 501, 2049, 4097, 9000))
      .map(([c, n]) => c.repeat(n))
  }
)

const oddNumber = fc.constantFrom(
  -1,
  0,
  1,
  0.5,
  -0.000001,
  2 ** 31,
  2 ** 31 - 1,
  -(2 ** 31),
  2 ** 53,
  2 ** 53 + 2,
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
  Number.MIN_VALUE,
  1e21
)

/** A JSON value of the wrong kind for `schema` (or of any kind: the server must refuse it cleanly). */
export const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  oddNumber,
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  oddString,
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 4 }),
  fc.dictionary(oddString, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
  fc.jsonValue({ maxDepth: 3 })
)

/** A JSON value nested `depth` levels deep. */
const nested = (depth: number, kind: "array" | "object") => {
  let value: unknown = 1
  for (let i = 0; i < depth; i++) value = kind === "array" ? [value] : { a: value }
  return value
}

export const deepValue = fc
  .tuple(fc.constantFrom(50, 500, 2000), fc.constantFrom("array" as const, "object" as const))
  .map(([depth, kind]) => nested(depth, kind))

const urlish = fc.constantFrom(
  "http://127.0.0.1:9/fuzz",
  "http://127.0.0.1:9/fuzz?a=1#b",
  "http://10.0.0.1/hook",
  "http://169.254.169.254/latest",
  "http://[::1]/",
  "http://user:pass@127.0.0.1:9/",
  "https://example.invalid/hook",
  "ftp://127.0.0.1/",
  "http://",
  "http://127.0.0.1:99999/",
  `http://127.0.0.1:9/${"a".repeat(2040)}`
)

/** The kinds of ids the world holds. */
const cursorKinds = ["ch", "msg", "wh", "dlv", "key", "evt", "cus", "aud"]

const isoDate = fc
  .date({ min: new Date("1970-01-01T00:00:00Z"), max: new Date("2100-01-01T00:00:00Z"), noInvalidDate: true })
  .map((d) => d.toISOString())

/** A date-time the pattern takes: ordinary ones, the pattern's own, and its extremes (years 1 and 9999, ±15:59). */
const dateTime = (pattern: string) =>
  fc.oneof(
    { weight: 3, arbitrary: isoDate },
    { weight: 1, arbitrary: patternArbitrary(pattern, {}) ?? isoDate },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+15:59",
        "9999-12-31T23:59:59.999999999Z",
        "9999-12-31T23:59:59-15:59",
        "2024-02-29T23:59:59.5+01:00",
        "1969-12-31T23:59:59Z",
        "2026-11-30T10:00Z"
      )
    }
  )

/** Lengths at a string's limits: one below, at, one above. */
const atLengthLimits = (schema: JsonSchema) => {
  const lengths = [schema.minLength, schema.maxLength]
    .filter((n): n is number => n !== undefined)
    .flatMap((n) => [n - 1, n, n + 1])
    .filter((n) => n >= 0)
  return lengths.length === 0
    ? undefined
    : fc.tuple(fc.constantFrom(...lengths), fc.constantFrom("a", "é", "🙂")).map(([n, c]) => c.repeat(n))
}

export interface SchemaArbitraries {
  /** Values the schema takes, or nearly (ids name live resources of anyone). */
  readonly valid: (schema: JsonSchema) => fc.Arbitrary<unknown>
  /** Values the schema probably refuses: at and beyond its limits, of other types, odd strings. */
  readonly invalid: (schema: JsonSchema) => fc.Arbitrary<unknown>
  /** Either, mostly the first. */
  readonly any: (schema: JsonSchema) => fc.Arbitrary<unknown>
}

const patternArbitrary = (pattern: string, schema: JsonSchema) => {
  try {
    const regex = new RegExp(pattern)
    return fc
      .stringMatching(regex, schema.maxLength === undefined ? {} : { size: "small" })
      .filter((s) => regex.test(s))
  } catch {
    return undefined
  }
}

/** Arbitraries derived from the JSON schemas of one OpenAPI document (its `$ref`s resolved there). */
export const schemaArbitraries = (components: Record<string, JsonSchema>): SchemaArbitraries => {
  const resolve = (schema: JsonSchema): JsonSchema => {
    if (schema.$ref === undefined) return schema
    const name = schema.$ref.replace("#/components/schemas/", "")
    const target = components[name]
    if (target === undefined) throw new Error(`the OpenAPI document has no schema ${schema.$ref}`)
    return resolve(target)
  }

  const valid = (raw: JsonSchema): fc.Arbitrary<unknown> => {
    const schema = resolve(raw)
    const alternatives = schema.anyOf ?? schema.oneOf
    if (alternatives !== undefined) return fc.oneof(...alternatives.map(valid))
    if (schema.enum !== undefined) return fc.constantFrom(...schema.enum)
    switch (schema.type) {
      case "string": {
        const kinds = idKindsOf(schema.pattern)
        if (kinds.length > 0) {
          const ids = fc.oneof(...kinds.map(idOfKind))
          // a pattern with other forms besides the id (`evt_...|[0-9]{1,15}`) gets those too
          const others = schema.pattern!.includes("|") ? patternArbitrary(schema.pattern!, schema) : undefined
          return others === undefined
            ? ids
            : fc.oneof({ weight: 4, arbitrary: ids }, { weight: 1, arbitrary: others })
        }
        if (schema.pattern?.includes("T([01]\\d|2[0-3])")) return dateTime(schema.pattern)
        // a page cursor is the base64url of an id: of the list's kind or another, anyone's
        if (schema.description?.includes("next_cursor")) {
          return fc.oneof(
            {
              weight: 3,
              arbitrary: fc
                .tuple(fc.constantFrom(...cursorKinds), fc.constantFrom("own", "other", "unknown"), fc.nat(3))
                .map(([kind, owner, i]) => `{{cursor:${owner}:${kind}:${i}}}`)
            },
            { weight: 1, arbitrary: patternArbitrary(schema.pattern ?? ".*", schema) ?? fc.string() }
          )
        }
        if (schema.examples?.every((e) => typeof e === "string" && /^https?:/.test(e))) return urlish
        // a free-form field whose example is an id (audit's resource_id) gets ids of every kind, anyone's
        const idExample = schema.examples?.some(
          (e) => typeof e === "string" && /^[a-z]+_[0-9a-z]{26}$/.test(e)
        )
        const anyId = fc.oneof(...cursorKinds.map(idOfKind))
        if (schema.pattern !== undefined) {
          const matching = patternArbitrary(schema.pattern, schema)
          const examples = schema.examples === undefined ? undefined : fc.constantFrom(...schema.examples)
          if (matching === undefined) return examples ?? fc.constant("")
          // the document's examples come back often: the same idempotency key twice, the same cursor...
          const taken = examples === undefined ? matching : fc.oneof(matching, examples)
          return idExample ? fc.oneof(taken, anyId) : taken
        }
        const lengths = [schema.minLength ?? 0, schema.maxLength].filter((n): n is number => n !== undefined)
        return fc.oneof(
          {
            weight: 3,
            arbitrary: fc.string({
              minLength: schema.minLength ?? 0,
              maxLength: Math.min(schema.maxLength ?? 40, Math.max(40, schema.minLength ?? 0)),
              unit: "grapheme"
            })
          },
          // exactly at the limits
          {
            weight: 1,
            arbitrary: fc
              .tuple(fc.constantFrom(...lengths), fc.constantFrom("a", "é", " "))
              .map(([n, c]) => c.repeat(n))
          }
        )
      }
      case "integer":
        return fc.integer({ min: schema.minimum ?? -(2 ** 31), max: schema.maximum ?? 2 ** 31 })
      case "number":
        return fc.double({ min: schema.minimum ?? -1e9, max: schema.maximum ?? 1e9, noNaN: true })
      case "boolean":
        return fc.boolean()
      case "array": {
        const items = schema.items === undefined ? fc.jsonValue() : valid(schema.items)
        const constraints = { minLength: schema.minItems ?? 0, maxLength: Math.min(schema.maxItems ?? 4, 4) }
        return schema.uniqueItems
          ? fc.uniqueArray(items, { ...constraints, selector: (v) => JSON.stringify(v) })
          : fc.array(items, constraints)
      }
      case "object": {
        const properties = schema.properties ?? {}
        const model = Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, valid(v)]))
        return fc.record(model, { requiredKeys: [...(schema.required ?? [])] as Array<string> })
      }
      default:
        return fc.jsonValue({ maxDepth: 2 })
    }
  }

  const invalid = (raw: JsonSchema): fc.Arbitrary<unknown> => {
    const schema = resolve(raw)
    const alternatives = schema.anyOf ?? schema.oneOf
    const specific: Array<fc.Arbitrary<unknown>> = []
    if (alternatives !== undefined) specific.push(...alternatives.map(invalid))
    if (schema.type === "string") {
      const limits = atLengthLimits(schema)
      if (limits !== undefined) specific.push(limits)
      specific.push(oddString)
      for (const kind of idKindsOf(schema.pattern)) {
        specific.push(fc.constantFrom(`${kind}_`, `${kind.toUpperCase()}_01M8MDM38WDVRZ8HR11E5WQSDM`))
      }
      if (schema.enum !== undefined) {
        specific.push(
          fc.constantFrom(...schema.enum.map((e) => String(e).toUpperCase()), ` ${String(schema.enum[0])}`)
        )
      }
    }
    if (schema.type === "integer" || schema.type === "number") {
      const bounds = [schema.minimum, schema.maximum]
        .filter((n): n is number => n !== undefined)
        .flatMap((n) => [n - 1, n + 1, n + 0.5])
      specific.push(oddNumber)
      if (bounds.length > 0) specific.push(fc.constantFrom(...bounds))
    }
    if (schema.type === "array") {
      const items =
        schema.items === undefined ? wrongValue : fc.oneof(valid(schema.items), invalid(schema.items))
      specific.push(
        fc.array(items, { minLength: (schema.maxItems ?? 4) + 1, maxLength: (schema.maxItems ?? 4) + 2 })
      )
      if (schema.uniqueItems && schema.items !== undefined) {
        specific.push(valid(schema.items).map((v) => [v, v]))
      }
    }
    if (schema.type === "object") specific.push(mutatedObject(schema))
    specific.push(wrongValue, deepValue)
    return fc.oneof(...specific)
  }

  /** A valid-ish object with one thing wrong: a field missing, added, or of the wrong kind. */
  const mutatedObject = (schema: JsonSchema): fc.Arbitrary<unknown> =>
    fc
      .tuple(
        valid(schema) as fc.Arbitrary<Record<string, unknown>>,
        fc.constantFrom("drop", "add", "wrong", "proto"),
        fc.constantFrom(...Object.keys(schema.properties ?? { x: {} })),
        oddString,
        wrongValue
      )
      .chain(([object, how, field, extraName, wrong]) => {
        const copy: Record<string, unknown> = { ...object }
        switch (how) {
          case "drop":
            delete copy[field]
            return fc.constant(copy)
          case "add":
            copy[extraName === field ? `${extraName}_` : extraName] = wrong
            return fc.constant(copy)
          case "proto":
            return fc.constant(JSON.parse(`{"__proto__": {"${field}": 1}, "constructor": {"prototype": {}}}`))
          default: {
            const property = schema.properties?.[field]
            return (property === undefined ? wrongValue : invalid(property)).map((value) => ({
              ...copy,
              [field]: value
            }))
          }
        }
      })

  const any = (schema: JsonSchema) =>
    fc.oneof({ weight: 3, arbitrary: valid(schema) }, { weight: 1, arbitrary: invalid(schema) })

  return { valid, invalid: (schema) => invalid(schema), any }
}
