import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import { OpenApi } from "effect/http-api"
import {
  SendMessage,
  Api,
  Channel,
  ConnectAccepted,
  ConnectRequest,
  CreateApiKey,
  CreateChannel,
  CreateWebhookEndpoint,
  RecoverRequest,
  RotateSecret,
  UpdateChannel,
  UpdateWebhookEndpoint
} from "../src/index.ts"

type Json = Record<string, any>

const spec = OpenApi.fromApi(Api) as Json

const operations = Object.entries(spec.paths as Record<string, Json>).flatMap(([path, methods]) =>
  Object.entries(methods).map(([method, operation]: [string, Json]) => ({
    name: `${method.toUpperCase()} ${path}`,
    operation
  }))
)

/** Every property of a schema, at any depth, with where it is. */
const propertiesOf = (schema: Json, where: string): Array<{ where: string; schema: Json }> => {
  if (typeof schema !== "object" || schema === null) return []
  const found: Array<{ where: string; schema: Json }> = []
  for (const [name, property] of Object.entries((schema.properties ?? {}) as Record<string, Json>)) {
    found.push({ where: `${where}.${name}`, schema: property }, ...propertiesOf(property, `${where}.${name}`))
  }
  for (const key of ["anyOf", "oneOf", "allOf"]) {
    for (const [i, member] of ((schema[key] ?? []) as Array<Json>).entries()) {
      found.push(...propertiesOf(member, `${where}|${i}`))
    }
  }
  if (schema.items !== undefined) found.push(...propertiesOf(schema.items, `${where}[]`))
  return found
}

/** Every schema in the document: bodies, answers, parameters and components. */
const schemas = (): Array<{ where: string; schema: Json }> => [
  ...operations.flatMap(({ name, operation }) => [
    ...Object.entries((operation.requestBody?.content ?? {}) as Record<string, Json>).map(([type, c]) => ({
      where: `${name} body ${type}`,
      schema: c.schema as Json
    })),
    ...Object.entries(operation.responses as Record<string, Json>).flatMap(([status, answer]) =>
      Object.entries((answer.content ?? {}) as Record<string, Json>).map(([type, c]) => ({
        where: `${name} ${status} ${type}`,
        schema: c.schema as Json
      }))
    ),
    ...((operation.parameters ?? []) as Array<Json>).map((p) => ({
      where: `${name} ${p.in} ${p.name}`,
      schema: p.schema as Json
    }))
  ]),
  ...Object.entries(spec.components.schemas as Record<string, Json>).map(([name, schema]) => ({
    where: name,
    schema
  }))
]

const everySchema = () =>
  schemas().flatMap(({ where, schema }) => [{ where, schema }, ...propertiesOf(schema, where)])

const decodes = (schema: Schema.Codec<any, any>, value: unknown) =>
  Schema.decodeUnknownExit(schema)(value, { onExcessProperty: "error" })._tag === "Success"

describe("the API reference (/openapi.json, rendered at /docs)", () => {
  it("has an introduction that covers channels, authentication, errors, idempotency, pagination and rate limits", () => {
    for (const section of [
      "channel",
      "## Authentication",
      "## Errors",
      "## Idempotency",
      "## Pagination",
      "## Rate limits",
      "webhooks"
    ]) {
      expect(spec.info.description, section).toContain(section)
    }
    for (const tag of spec.tags as Array<Json>) expect(tag.description, tag.name).toMatch(/\w{3}/)
  })

  it("lists every problem code the API answers in the introduction's error table, with its status", () => {
    const table = (spec.info.description as string).split("## Errors")[1]!.split("\n## ")[0]!
    const rows = table.split("\n").filter((line) => /^\| \d{3} \|/.test(line))
    const problems = Object.values(spec.components.schemas as Record<string, Json>).filter(
      (schema) => schema.properties?.code?.enum !== undefined && schema.properties?.status !== undefined
    )
    expect(problems.length).toBeGreaterThanOrEqual(12)
    for (const problem of problems) {
      const status = problem.properties.status.enum[0] as number
      for (const code of problem.properties.code.enum as Array<string>) {
        const row = rows.find((line) => line.includes(`\`${code}\``))
        expect(row, code).toBeDefined()
        expect(row, code).toMatch(new RegExp(`^\\| ${status} \\|`))
      }
    }
  })

  it("gives every operation a summary and a description, and every parameter a description", () => {
    expect(operations.length).toBeGreaterThanOrEqual(17)
    for (const { name, operation } of operations) {
      expect(operation.summary, name).toMatch(/\w/)
      expect(operation.description, name).toMatch(/\w{3}.*\w{3}/)
      for (const parameter of (operation.parameters ?? []) as Array<Json>) {
        expect(parameter.description, `${name} ${parameter.name}`).toMatch(/\w{3}/)
      }
    }
  })

  it("describes every field of every body, answer and problem", () => {
    const undescribed = everySchema()
      .filter(({ where }) => /\.[a-z_]+$/.test(where))
      .filter(({ schema }) => typeof schema.description !== "string" || schema.description === "")
      .map(({ where }) => where)
    expect(undescribed).toEqual([])
  })

  it("takes API keys as bearer tokens on every /v1 operation, spelt as OpenAPI viewers expect", () => {
    expect(spec.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" })
    for (const { name, operation } of operations) {
      if (name.includes(" /v1/")) expect(operation.security, name).toEqual([{ bearer: [] }])
    }
  })

  it("shows ids with their prefix, limit as a bounded integer, and no number that could be Infinity or NaN", () => {
    const text = JSON.stringify(spec)
    expect(text).not.toMatch(/"(-?Infinity|NaN)"/)
    const channelId = operations.find(({ name }) => name === "GET /v1/channels/{id}")!.operation.parameters[0]
    expect(channelId.schema.pattern).toBe("^ch_[0-9a-z]{26}$")
    for (const { name, operation } of operations) {
      const limit = ((operation.parameters ?? []) as Array<Json>).find((p) => p.name === "limit")
      if (limit !== undefined) {
        expect(limit.schema, name).toEqual({ type: "integer", minimum: 1, maximum: 100, default: 20 })
      }
    }
  })

  it("documents the QR code as JSON, PNG and SVG", () => {
    const qr = operations.find(({ name }) => name === "GET /v1/channels/{id}/qr")!.operation
    expect(Object.keys(qr.responses["200"].content)).toEqual([
      "application/json",
      "image/png",
      "image/svg+xml"
    ])
  })

  it("gives examples that the API itself accepts and answers", () => {
    for (const { where, schema } of everySchema()) {
      if (typeof schema.pattern !== "string" || schema.examples === undefined) continue
      for (const example of schema.examples as Array<unknown>) {
        expect(String(example), where).toMatch(new RegExp(schema.pattern, "u"))
      }
    }
    const bodies: Record<string, Schema.Codec<any, any>> = {
      "POST /v1/api-keys": CreateApiKey,
      "POST /v1/channels": CreateChannel,
      "PATCH /v1/channels/{id}": UpdateChannel,
      "POST /v1/channels/{id}/connect": ConnectRequest,
      "POST /v1/channels/{id}/webhooks": CreateWebhookEndpoint,
      "POST /v1/webhooks": CreateWebhookEndpoint,
      "PATCH /v1/webhooks/{id}": UpdateWebhookEndpoint,
      "POST /v1/webhooks/{id}/rotate-secret": RotateSecret,
      "POST /v1/webhooks/{id}/recover": RecoverRequest,
      "POST /v1/channels/{id}/messages": SendMessage
    }
    for (const { name, operation } of operations) {
      const body = operation.requestBody?.content["application/json"]?.schema
      if (body === undefined) continue
      expect(bodies[name], `${name} needs its payload schema here`).toBeDefined()
      expect(body.examples, name).toBeDefined()
      for (const example of body.examples) expect(decodes(bodies[name]!, example), name).toBe(true)
    }
    for (const { name, operation } of operations) {
      if (!name.includes(" /v1/channels") || name.endsWith("/webhooks") || name.endsWith("/messages"))
        continue
      for (const answer of Object.values(operation.responses as Record<string, Json>)) {
        const examples = answer.content?.["application/json"]?.schema?.examples as Array<unknown> | undefined
        for (const example of examples ?? []) {
          const schema = name.endsWith("/connect") ? ConnectAccepted : Channel
          expect(decodes(schema, example), `${name} ${JSON.stringify(example)}`).toBe(true)
        }
      }
    }
    const connect = operations.find(({ name }) => name === "POST /v1/channels/{id}/connect")!.operation
    expect(connect.responses["202"].content["application/json"].schema.examples[0]).toEqual({
      status: "pairing"
    })
  })
})
