import {
  Api,
  type InvalidRequest,
  maxJsonBodyBytes,
  PayloadFields,
  RequestValidation
} from "@whatisup/domain"
import { ByteSize, Context, Effect, Layer, Metric, References, type Types } from "effect"
import {
  HttpIncomingMessage,
  HttpRouter,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse
} from "effect/http"
import { HttpApiMiddleware, OpenApi } from "effect/http-api"
import * as crypto from "node:crypto"
import { CurrentClientRequestId, CurrentRequestId } from "../audit/requestId.ts"
import { compressed } from "./compression.ts"
import { declaredFieldsOf, invalidRequestOf, tooManyUnknownFields } from "./fieldErrors.ts"
import {
  asProblem,
  databaseUnavailable,
  internalError,
  isBodyTooLarge,
  isDatabaseUnavailable,
  payloadTooLarge,
  problemResponse
} from "./problems.ts"

/** The listener's limit, for bodies outside the JSON API. */
export const maxBodyBytes = 1024 * 1024

/** Every body the API under /v1 takes is JSON, and small: refused beyond `maxJsonBodyBytes`. */
const maxBodyBytesOf = (route: string) => (route.startsWith("/v1/") ? maxJsonBodyBytes : maxBodyBytes)

const requests = Metric.counter("http_requests_total", {
  description: "HTTP requests by route, method and status"
})
const latency = Metric.histogram("http_request_duration_seconds", {
  description: "HTTP request latency by route",
  boundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
})

interface RouteTemplate {
  readonly template: string
  readonly methods: ReadonlyArray<string>
  /** The template's segments after the leading `/`, `undefined` where a parameter takes any value. */
  readonly segments: ReadonlyArray<string | undefined>
}

/**
 * The API's path templates with the methods each takes: route labels for metrics (so the label set
 * stays small whatever is requested), and the `Allow` of a 405. Kept by segment count, so a request
 * is compared with the few templates of its path's length, segment by segment.
 */
const routeTemplates = new Map<number, Array<RouteTemplate>>()
for (const { template, methods } of [
  ...Object.entries(OpenApi.fromApi(Api).paths).map(([template, operations]) => ({
    template,
    methods: Object.keys(operations).map((method) => method.toUpperCase())
  })),
  { template: "/docs", methods: ["GET"] },
  { template: "/openapi.json", methods: ["GET"] }
]) {
  const segments = template
    .slice(1)
    .split("/")
    .map((segment) => (/^\{[^}/]+\}$/.test(segment) ? undefined : segment))
  const sameLength = routeTemplates.get(segments.length) ?? []
  sameLength.push({ template, methods, segments })
  routeTemplates.set(segments.length, sameLength)
}

const routeFor = (url: string): RouteTemplate | undefined => {
  const query = url.indexOf("?")
  const segments = (query === -1 ? url : url.slice(0, query)).slice(1).split("/")
  return routeTemplates
    .get(segments.length)
    ?.find((route) =>
      route.segments.every((expected, i) =>
        expected === undefined ? segments[i] !== "" : segments[i] === expected
      )
    )
}

/** As `asProblem`; and a path the API has, asked with a method it does not take, is a 405 naming those it does. */
const asProblemOf = (
  request: HttpServerRequest.HttpServerRequest,
  route: RouteTemplate | undefined,
  response: HttpServerResponse.HttpServerResponse
) => {
  const allowed = route?.methods
  if (response.status !== 404 || allowed === undefined || allowed.includes(request.method)) {
    return asProblem(response)
  }
  return problemResponse({
    status: 405,
    code: "method_not_allowed",
    title: "Method not allowed",
    detail: `${request.url.split("?")[0]} takes ${allowed.join(", ")}, not ${request.method}`,
    headers: { allow: allowed.join(", ") }
  })
}

/**
 * One metric per label set, made once and kept (routes, methods and statuses are few): a metric with
 * attributes computes its series key at its first update, not at every request.
 */
const labelled = <Labels extends ReadonlyArray<string>, M>(make: (...labels: Labels) => M) => {
  const made = new Map<string, M>()
  return (...labels: Labels) => {
    const key = labels.join(" ")
    let metric = made.get(key)
    if (metric === undefined) {
      metric = make(...labels)
      made.set(key, metric)
    }
    return metric
  }
}

const requestsOf = labelled((route: string, method: string, status: string) =>
  Metric.withAttributes(requests, { route, method, status })
)
const latencyOf = labelled((route: string) => Metric.withAttributes(latency, { route }))

const requestIdPattern = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * Every request: an id of the gateway's own (answered in `x-request-id`, in logs and audit rows; the
 * client's own `x-request-id`, when sane, is kept beside it and echoed in `x-client-request-id`), the
 * body limit, problem+json for all errors, metrics, and the docs compressed. It runs on every request,
 * so it takes few steps: the request's services and log annotations (failures are logged with them too)
 * in one change of context, the metrics recorded in place.
 */
export const layerRequestPipeline = HttpRouter.middleware(
  (httpEffect) =>
    Effect.withFiber((fiber) => {
      const request = Context.getUnsafe(fiber.context, HttpServerRequest.HttpServerRequest)
      const incoming = request.headers["x-request-id"]
      const requestId = crypto.randomUUID()
      const clientRequestId = incoming !== undefined && requestIdPattern.test(incoming) ? incoming : null
      const started = performance.now()
      const matched = routeFor(request.url)
      const route = matched?.template ?? (request.url.startsWith("/console") ? "/console" : "unmatched")
      const maxBytes = maxBodyBytesOf(route)
      const answered = (response: HttpServerResponse.HttpServerResponse) => {
        requestsOf(route, request.method, String(response.status)).updateUnsafe(1, fiber.context)
        latencyOf(route).updateUnsafe((performance.now() - started) / 1000, fiber.context)
        const identified = HttpServerResponse.setHeader(
          route === "/docs" ? compressed(request, response) : response,
          "x-request-id",
          requestId
        )
        return clientRequestId === null
          ? identified
          : HttpServerResponse.setHeader(identified, "x-client-request-id", clientRequestId)
      }
      if (Number(request.headers["content-length"] ?? 0) > maxBytes) {
        return Effect.succeed(answered(payloadTooLarge(maxBytes)))
      }
      return httpEffect.pipe(
        Effect.matchCauseEffect({
          onSuccess: (response) => Effect.succeed(answered(asProblemOf(request, matched, response))),
          onFailure: (cause) =>
            Effect.map(
              isBodyTooLarge(cause)
                ? Effect.succeed(payloadTooLarge(maxBytes))
                : isDatabaseUnavailable(cause)
                  ? databaseUnavailable(cause)
                  : Effect.flatMap(HttpServerError.causeResponse(cause), ([response]) =>
                      response.status >= 500
                        ? internalError(cause)
                        : Effect.succeed(asProblemOf(request, matched, response))
                    ),
              answered
            )
        }),
        Effect.updateContext((context: Context.Context<never>) => {
          const annotations = {
            ...Context.get(context, References.CurrentLogAnnotations),
            request_id: requestId,
            ...(clientRequestId === null ? {} : { client_request_id: clientRequestId }),
            method: request.method,
            path: request.url
          }
          return Context.add(
            Context.add(
              Context.add(
                Context.add(context, HttpIncomingMessage.MaxBodySize, ByteSize.bytes(maxBytes)),
                CurrentRequestId,
                requestId
              ),
              CurrentClientRequestId,
              clientRequestId
            ),
            References.CurrentLogAnnotations,
            annotations
          )
        })
      )
      // every failure became a response above; the router's type still expects unhandled errors to flow on
    }) as Effect.Effect<
      HttpServerResponse.HttpServerResponse,
      Types.unhandled,
      HttpServerRequest.HttpServerRequest
    >,
  { global: true }
)

export const layerRequestValidation = HttpApiMiddleware.layerSchemaErrorTransform(
  RequestValidation,
  (error) =>
    error.kind === "Body" || error.kind === "ResponseHeaders"
      ? Effect.as(
          Effect.logError("response encoding failed", error.cause),
          problemResponse({ status: 500, code: "internal_error", title: "Internal server error" })
        )
      : Effect.fail(invalidRequestOf(error))
)

// below this size, decoding a body and listing its errors costs little however many fields are wrong
const precheckedBodyBytes = 16 * 1024

/**
 * A large JSON body with too many unknown fields is refused before it is decoded (see `PayloadFields`).
 * A body its Content-Length says is small goes on unread here (the decoder reads it): the path of
 * nearly every request, in plain steps.
 */
export const layerPayloadFields = Layer.succeed(PayloadFields, (httpEffect, { endpoint }) => {
  const fields = declaredFieldsOf(endpoint)
  if (fields === undefined) return httpEffect
  const checked: Effect.Effect<HttpServerResponse.HttpServerResponse, Types.unhandled | InvalidRequest> =
    Effect.withFiber((fiber) => {
      const request = Context.getUnsafe(fiber.context, HttpServerRequest.HttpServerRequest)
      const contentType = request.headers["content-type"]?.split(";")[0]?.trim().toLowerCase()
      if (contentType !== undefined && contentType !== "application/json") return httpEffect
      const declaredLength = request.headers["content-length"]
      if (declaredLength !== undefined && Number(declaredLength) <= precheckedBodyBytes) return httpEffect
      return Effect.flatMap(Effect.orDie(request.arrayBuffer), (body) =>
        body.byteLength <= precheckedBodyBytes
          ? httpEffect
          : Effect.flatMap(Effect.orDie(request.text), (text): typeof checked => {
              const refused = tooManyUnknownFields(fields, parsedOrUndefined(text))
              return refused === undefined ? httpEffect : Effect.fail(refused)
            })
      )
    })
  return checked
})

const parsedOrUndefined = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    // the decoder answers malformed JSON
    return undefined
  }
}
