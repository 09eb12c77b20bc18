import fc from "fast-check"
import { deepValue, idKindsOf, type JsonSchema, oddString, schemaArbitraries, wrongValue } from "./schemas.ts"

interface Parameter {
  readonly name: string
  readonly in: "path" | "query" | "header" | "cookie"
  readonly required?: boolean
  readonly schema: JsonSchema
}

/** One operation of the OpenAPI document. */
export interface Operation {
  readonly method: string
  readonly path: string
  /** "METHOD /path/{param}", as the isolation fixtures name routes. */
  readonly route: string
  readonly parameters: ReadonlyArray<Parameter>
  /** The JSON schema of its request body, when it takes one. */
  readonly body: JsonSchema | undefined
  /** The statuses the document says it answers. */
  readonly statuses: ReadonlyArray<string>
  /** For a list, the kind of id its items have (`aud` for `aud_...`): what its cursors hold. */
  readonly listKind: string | undefined
}

export interface OpenApiDocument {
  readonly paths: Record<string, Record<string, any>>
  readonly components?: { readonly schemas?: Record<string, JsonSchema> }
}

export const operationsOf = (document: OpenApiDocument): ReadonlyArray<Operation> =>
  Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({
      method: method.toUpperCase(),
      path,
      route: `${method.toUpperCase()} ${path}`,
      parameters: (operation.parameters ?? []) as ReadonlyArray<Parameter>,
      body: operation.requestBody?.content?.["application/json"]?.schema as JsonSchema | undefined,
      statuses: Object.keys(operation.responses ?? {}),
      listKind: listKindOf(document, operation.responses?.["200"]?.content?.["application/json"]?.schema)
    }))
  )

const listKindOf = (document: OpenApiDocument, schema: JsonSchema | undefined) => {
  const resolved = (s: JsonSchema | undefined) =>
    s?.$ref === undefined ? s : document.components?.schemas?.[s.$ref.replace("#/components/schemas/", "")]
  const item = resolved(resolved(resolved(schema)?.properties?.data)?.items)
  return idKindsOf(resolved(item?.properties?.id)?.pattern)[0]
}

/** How a value goes into the URL: percent-encoded as a client library would, or as typed (`/`, `..`, `%ZZ` kept). */
export type Encoding = "encoded" | "raw"

export type Body =
  | { readonly kind: "json"; readonly value: unknown }
  | { readonly kind: "text"; readonly text: string }
  | { readonly kind: "bytes"; readonly bytes: ReadonlyArray<number> }

/** A request as generated: data, with `{{...}}` placeholders for ids and keys (see `resolve` in world.ts). */
export interface FuzzRequest {
  readonly route: string
  readonly method: string
  readonly path: Readonly<Record<string, readonly [string, Encoding]>>
  readonly query: ReadonlyArray<readonly [string, string, Encoding]>
  readonly headers: Readonly<Record<string, string>>
  readonly body: Body | undefined
  /** The loopback address it is sent from: failed authentications are limited per address. */
  readonly from: string
}

const encoding: fc.Arbitrary<Encoding> = fc.oneof(
  { weight: 6, arbitrary: fc.constant("encoded" as const) },
  { weight: 1, arbitrary: fc.constant("raw" as const) }
)

/** A key placeholder (`{{key:own}}`...) resolved to the world's keys when sent. */
const authorization = fc.oneof(
  { weight: 14, arbitrary: fc.constant("Bearer {{key:own}}") },
  { weight: 2, arbitrary: fc.constant("Bearer {{key:bound}}") },
  { weight: 2, arbitrary: fc.constant("Bearer {{key:intruder}}") },
  { weight: 1, arbitrary: fc.constant("Bearer {{key:revoked}}") },
  { weight: 1, arbitrary: fc.constant("Bearer {{key:tampered}}") },
  { weight: 1, arbitrary: fc.constant(undefined) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "",
      "Bearer",
      "Bearer ",
      "bearer {{key:own}}",
      "BEARER {{key:own}}",
      "Bearer  {{key:own}}",
      "Bearer {{key:own}} {{key:own}}",
      "Bearer {{key:own}},Bearer {{key:intruder}}",
      "Basic dXNlcjpwYXNz",
      "Token {{key:own}}",
      "Bearer wiu_",
      "{{key:own}}"
    )
  },
  { weight: 1, arbitrary: oddString.map((s) => `Bearer ${s}`) }
)

const contentType = fc.oneof(
  { weight: 10, arbitrary: fc.constant("application/json") },
  { weight: 1, arbitrary: fc.constant(undefined) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "application/json; charset=utf-8",
      "APPLICATION/JSON",
      "application/json; charset=latin1",
      "application/json;",
      "application/json, text/plain",
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "multipart/form-data",
      "application/problem+json",
      "application/merge-patch+json",
      "*/*",
      "",
      "json",
      "application/json; boundary=\u00ff"
    )
  }
)

const optionalHeader = (values: fc.Arbitrary<string>) =>
  fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: values })

const accept = optionalHeader(
  fc.oneof(
    fc.constantFrom(
      "application/json",
      "image/png",
      "image/svg+xml",
      "text/event-stream",
      "*/*",
      "image/*",
      "image/png;q=0, application/json;q=0.5",
      "image/png;q=abc",
      "text/html",
      ";;;",
      "application/json;q=0"
    ),
    oddString
  )
)

const acceptEncoding = optionalHeader(
  fc.constantFrom("gzip", "br", "deflate", "gzip;q=0", "*", "identity;q=0", "zstd", ",")
)

const requestId = optionalHeader(
  fc.oneof(fc.constantFrom("req-1", "a".repeat(128), "a".repeat(129), "a b"), oddString)
)

/** Bodies no schema describes: malformed, truncated, nested past reason, larger than the limit. */
const rawBody: fc.Arbitrary<Body> = fc.oneof(
  fc
    .constantFrom(
      "",
      "{",
      '{"name": ',
      "[",
      "null",
      "{}garbage",
      "\ufeff{}",
      '{"name":"a","name":1}',
      '{"__proto__":{"admin":true}}',
      '{"constructor":{"prototype":{"admin":true}}}',
      '{"name":"\u0000"}',
      '{"a":1e999999}',
      '{"a":123456789012345678901234567890}',
      '{"url":"\\ud800"}',
      '"\\u0000"',
      "'single'",
      "NaN",
      "{}".repeat(1000)
    )
    .map((text) => ({ kind: "text" as const, text })),
  fc.tuple(fc.constantFrom(10_000, 30_000), fc.constantFrom("[", '{"a":')).map(([depth, open]) => ({
    kind: "text" as const,
    text: `${open.repeat(depth)}1${(open === "[" ? "]" : "}").repeat(depth)}`
  })),
  fc
    .constantFrom(64 * 1024 - 16, 64 * 1024 + 1, 300_000)
    .map((size) => ({ kind: "text" as const, text: JSON.stringify({ name: "a".repeat(size) }) })),
  fc.string().map((text) => ({ kind: "text" as const, text })),
  fc.array(fc.nat(255), { maxLength: 64 }).map((bytes) => ({ kind: "bytes" as const, bytes }))
)

const headerParameter = (
  arbitraries: ReturnType<typeof schemaArbitraries>,
  parameter: Parameter
): fc.Arbitrary<string | undefined> =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    { weight: 3, arbitrary: arbitraries.valid(parameter.schema).map(String) },
    { weight: 1, arbitrary: arbitraries.invalid(parameter.schema).map(asText) }
  )

/** What a query string or header carries of a generated value. */
const asText = (value: unknown) => (typeof value === "string" ? value : (JSON.stringify(value) ?? ""))

const queryParameter = (
  arbitraries: ReturnType<typeof schemaArbitraries>,
  parameter: Parameter
): fc.Arbitrary<ReadonlyArray<readonly [string, string, Encoding]>> => {
  const value = fc.oneof(
    { weight: 3, arbitrary: arbitraries.valid(parameter.schema).map(asText) },
    { weight: 1, arbitrary: arbitraries.invalid(parameter.schema).map(asText) }
  )
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant([]) },
    { weight: 4, arbitrary: fc.tuple(value, encoding).map(([v, e]) => [[parameter.name, v, e] as const]) },
    { weight: 1, arbitrary: fc.constant([[parameter.name, "", "encoded"] as const]) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(value, value)
        .map(([a, b]) => [[parameter.name, a, "encoded"] as const, [parameter.name, b, "encoded"] as const])
    }
  )
}

const isCursor = (parameter: Parameter) => parameter.schema.description?.includes("next_cursor") === true

/** A cursor after one of anyone's ids of the list's kind (`{{cursor:...}}`, see `resolve`). */
const cursorOf = (kind: string) =>
  fc
    .tuple(fc.constantFrom("own", "other", "unknown"), fc.nat(3))
    .map(([owner, i]) => `{{cursor:${owner}:${kind}:${i}}}`)

const otherMethod = fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

/**
 * Requests to one operation, drawn from its parameters and body schema: well-formed ones (valid values,
 * the ids of anyone's resources, a key that works) to reach what the handlers do, and wild ones where
 * any part may be wrong, odd or missing.
 */
export const requestsTo = (document: OpenApiDocument, operation: Operation): fc.Arbitrary<FuzzRequest> => {
  const arbitraries = schemaArbitraries(document.components?.schemas ?? {})
  return fc.oneof(
    { weight: 1, arbitrary: requestsOf(arbitraries, operation, "well-formed") },
    { weight: 2, arbitrary: requestsOf(arbitraries, operation, "wild") }
  )
}

const requestsOf = (
  arbitraries: ReturnType<typeof schemaArbitraries>,
  operation: Operation,
  mode: "well-formed" | "wild"
): fc.Arbitrary<FuzzRequest> => {
  const wild = mode === "wild"
  const inPath = operation.parameters.filter((p) => p.in === "path")
  const inQuery = operation.parameters.filter((p) => p.in === "query")
  const inHeaders = operation.parameters.filter((p) => p.in === "header")
  const path = fc.record(
    Object.fromEntries(
      inPath.map((p) => [
        p.name,
        wild
          ? fc.tuple(
              fc.oneof(
                { weight: 5, arbitrary: arbitraries.valid(p.schema).map(asText) },
                { weight: 2, arbitrary: arbitraries.invalid(p.schema).map(asText) }
              ),
              encoding
            )
          : arbitraries.valid(p.schema).map((v) => [asText(v), "encoded"] as const)
      ])
    )
  )
  const query = wild
    ? fc
        .tuple(
          fc.tuple(...inQuery.map((p) => queryParameter(arbitraries, p))),
          fc.oneof(
            { weight: 9, arbitrary: fc.constant([]) },
            { weight: 1, arbitrary: fc.array(fc.tuple(oddString, oddString, encoding), { maxLength: 3 }) }
          )
        )
        .map(([known, unknown]) => [...known.flat(), ...unknown])
    : fc
        .tuple(
          ...inQuery.map((p) =>
            fc.option(
              isCursor(p) && operation.listKind !== undefined
                ? cursorOf(operation.listKind)
                : arbitraries.valid(p.schema).map(asText),
              { nil: undefined, freq: 2 }
            )
          )
        )
        .map((values) =>
          values.flatMap((value, i) =>
            value === undefined ? [] : [[inQuery[i]!.name, value, "encoded"] as const]
          )
        )
  const body: fc.Arbitrary<Body | undefined> =
    operation.body === undefined
      ? wild
        ? fc.oneof(
            { weight: 9, arbitrary: fc.constant(undefined) },
            { weight: 1, arbitrary: wrongValue.map((value) => ({ kind: "json" as const, value })) },
            { weight: 1, arbitrary: rawBody }
          )
        : fc.constant(undefined)
      : wild
        ? fc.oneof(
            {
              weight: 2,
              arbitrary: arbitraries.valid(operation.body).map((value) => ({ kind: "json" as const, value }))
            },
            {
              weight: 4,
              arbitrary: arbitraries
                .invalid(operation.body)
                .map((value) => ({ kind: "json" as const, value }))
            },
            { weight: 1, arbitrary: deepValue.map((value) => ({ kind: "json" as const, value })) },
            { weight: 2, arbitrary: rawBody },
            { weight: 1, arbitrary: fc.constant(undefined) }
          )
        : arbitraries.valid(operation.body).map((value) => ({ kind: "json" as const, value }))
  const headers = fc
    .tuple(
      wild
        ? authorization
        : fc.oneof(
            { weight: 6, arbitrary: fc.constant("Bearer {{key:own}}") },
            { weight: 1, arbitrary: fc.constant("Bearer {{key:bound}}") },
            { weight: 1, arbitrary: fc.constant("Bearer {{key:intruder}}") }
          ),
      wild ? contentType : fc.constant(operation.body === undefined ? undefined : "application/json"),
      wild ? accept : fc.constant(undefined),
      wild ? acceptEncoding : fc.constant(undefined),
      wild ? requestId : fc.constant(undefined),
      fc.tuple(
        ...inHeaders.map((p) =>
          wild
            ? headerParameter(arbitraries, p)
            : fc.option(arbitraries.valid(p.schema).map(String), { nil: undefined, freq: 2 })
        )
      )
    )
    .map(([auth, type, acceptValue, encodingValue, id, declared]) => {
      const all: Record<string, string | undefined> = {
        authorization: auth,
        "content-type": type,
        accept: acceptValue,
        "accept-encoding": encodingValue,
        "x-request-id": id,
        ...Object.fromEntries(inHeaders.map((p, i) => [p.name, declared[i]]))
      }
      return Object.fromEntries(
        Object.entries(all).filter((entry): entry is [string, string] => entry[1] !== undefined)
      )
    })
  const method = wild
    ? fc.oneof(
        { weight: 15, arbitrary: fc.constant(operation.method) },
        { weight: 1, arbitrary: otherMethod }
      )
    : fc.constant(operation.method)
  // never 127.0.0.1, where the test makes its fixtures; a few addresses run into the failed-authentication limit
  const from = fc.oneof(
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 }).map((d) => `127.1.0.${d}`) },
    {
      weight: 4,
      arbitrary: fc.tuple(fc.nat(255), fc.integer({ min: 1, max: 254 })).map(([a, b]) => `127.1.${a}.${b}`)
    }
  )
  return fc
    .record({ method, path, query, headers, body, from })
    .map((parts) => printedShort({ route: operation.route, ...parts } as FuzzRequest))
}

/** Long strings and deep values cut short, for printing. */
const compact = (value: unknown, depth = 0): unknown => {
  if (typeof value === "string")
    return value.length > 120 ? `${value.slice(0, 60)}…(${value.length} chars)` : value
  if (depth > 6) return "…(deeper)"
  if (Array.isArray(value)) return value.slice(0, 20).map((v) => compact(v, depth + 1))
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .slice(0, 20)
        .map(([k, v]) => [compact(k), compact(v, depth + 1)])
    )
  }
  return value
}

// fast-check prints a counterexample with this; seed and path replay it whole
const printedShort = (request: FuzzRequest) =>
  Object.defineProperty(request, fc.toStringMethod, { value: () => JSON.stringify(compact(request)) })
