import { InvalidRequest, maxFieldErrors } from "@whatisup/domain"
import { SchemaAST, SchemaIssue } from "effect"
import type { HttpApiEndpoint, HttpApiError } from "effect/http-api"

const slotNames: Record<HttpApiError.HttpApiSchemaError["kind"], string> = {
  Params: "path",
  Query: "query",
  Headers: "header",
  Payload: "body",
  Body: "response",
  ResponseHeaders: "response"
}

const unknownField = "is not a known field"

const formatter = SchemaIssue.makeFormatterStandardSchemaV1({
  leafHook: (issue) =>
    issue._tag === "UnexpectedKey"
      ? unknownField
      : issue._tag === "MissingKey"
        ? "is required"
        : SchemaIssue.defaultLeafHook(issue)
})

// a field name or a message can echo what was sent: each is cut, so the answer stays small
const maxTextLength = 200
const cut = (text: string) => (text.length > maxTextLength ? `${text.slice(0, maxTextLength - 1)}…` : text)

/** Field errors by path, listed up to `maxFieldErrors` and only counted beyond. */
const makeFieldErrors = (slot: string) => {
  const byPath = new Map<string, Array<string>>()
  let omitted = 0
  return {
    get full() {
      return byPath.size >= maxFieldErrors
    },
    add: (segments: ReadonlyArray<PropertyKey>, message: string) => {
      const path = cut([slot, ...segments.map(String)].join("."))
      const messages = byPath.get(path)
      if (messages === undefined) {
        if (byPath.size >= maxFieldErrors) omitted++
        else byPath.set(path, [cut(message)])
      } else if (!messages.includes(cut(message))) messages.push(cut(message))
    },
    omit: (count = 1) => void (omitted += count),
    toProblem: () =>
      new InvalidRequest({
        detail: "The request has invalid fields; see errors",
        errors: [...byPath].map(([path, messages]) => ({ path, message: messages.join("; ") })),
        ...(omitted > 0 ? { errors_omitted: omitted } : {})
      })
  }
}

type FieldErrors = ReturnType<typeof makeFieldErrors>

/**
 * The field a union of objects is told apart by (`type`: each member declares it as a literal), with
 * its values: an object that matches no member has that field wrong, and the answer names it.
 */
const discriminatorOf = (ast: SchemaAST.Union) => {
  const members = ast.types.map((member) => SchemaAST.toEncoded(member))
  if (!members.every(SchemaAST.isObjects)) return undefined
  const first = (members[0] as SchemaAST.Objects | undefined)?.propertySignatures ?? []
  for (const candidate of first) {
    const values = (members as ReadonlyArray<SchemaAST.Objects>).map((member) => {
      const field = member.propertySignatures.find((p) => p.name === candidate.name)
      return field !== undefined && SchemaAST.isLiteral(field.type) ? field.type.literal : undefined
    })
    if (values.every((value) => value !== undefined)) return { key: candidate.name, values }
  }
  return undefined
}

/** Walks down to each failure, formatting it until the list is full and only counting after that. */
const collect = (issue: SchemaIssue.Issue, path: ReadonlyArray<PropertyKey>, errors: FieldErrors): void => {
  switch (issue._tag) {
    case "Pointer":
      return collect(issue.issue, [...path, ...issue.path], errors)
    case "Composite":
      for (const inner of issue.issues) collect(inner, path, errors)
      return
    case "AnyOf": {
      if (issue.issues.length > 0) {
        for (const inner of issue.issues) collect(inner, path, errors)
        return
      }
      const tags = discriminatorOf(issue.ast)
      if (tags !== undefined && typeof issue.input === "object" && issue.input !== null) {
        if (errors.full) return errors.omit()
        return errors.add([...path, tags.key], `must be one of: ${tags.values.join(", ")}`)
      }
    }
  }
  if (errors.full) return errors.omit()
  for (const formatted of formatter(issue).issues) {
    errors.add(
      [...path, ...(formatted.path ?? []).map((s) => (typeof s === "object" ? s.key : s))],
      formatted.message
    )
  }
}

/** The offending fields of a request that failed to decode, named by where they were sent. */
export const invalidRequestOf = (error: HttpApiError.HttpApiSchemaError) => {
  const errors = makeFieldErrors(slotNames[error.kind])
  collect(error.cause.issue, [], errors)
  return errors.toProblem()
}

/** The fields an endpoint's JSON body may carry at its top level; undefined when it is not a plain object. */
const declaredFields = new WeakMap<HttpApiEndpoint.Top, ReadonlySet<PropertyKey> | undefined>()

export const declaredFieldsOf = (endpoint: HttpApiEndpoint.Top) => {
  if (declaredFields.has(endpoint)) return declaredFields.get(endpoint)
  const schemas = endpoint.payload.get("application/json")?.schemas ?? []
  const objects = schemas.flatMap((schema) => {
    const ast = SchemaAST.toEncoded(schema.ast)
    return SchemaAST.isUnion(ast) ? ast.types : [ast]
  })
  const fields = objects.every((ast) => SchemaAST.isObjects(ast) && ast.indexSignatures.length === 0)
    ? new Set(objects.flatMap((ast) => (ast as SchemaAST.Objects).propertySignatures.map((p) => p.name)))
    : undefined
  declaredFields.set(endpoint, objects.length === 0 ? undefined : fields)
  return declaredFields.get(endpoint)
}

/**
 * Refuses a body with more unknown top-level fields than an answer lists, without decoding it: the
 * schema would build, and the answer format, one error per field.
 */
export const tooManyUnknownFields = (fields: ReadonlySet<PropertyKey>, body: unknown) => {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return undefined
  const errors = makeFieldErrors("body")
  let unknown = 0
  // one pass, listing the first unknown fields and counting the others
  for (const key in body) {
    if (fields.has(key)) continue
    if (++unknown <= maxFieldErrors) errors.add([key], unknownField)
  }
  if (unknown <= maxFieldErrors) return undefined
  errors.omit(unknown - maxFieldErrors)
  return errors.toProblem()
}
