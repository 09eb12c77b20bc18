import type { Event } from "@whatisup/domain"
import { Context, Data, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { EventLog, layerEventLog } from "../../src/events/eventLog.ts"
import { layerSqlFor } from "./database.ts"
import type { RunningGateway } from "./gateway.ts"

/** One Server-Sent Events frame as it came on the wire: its fields, and its comment lines. */
export interface Frame {
  readonly id?: string
  readonly event?: string
  readonly data?: string
  readonly retry?: string
  readonly comments: ReadonlyArray<string>
}

/** An event frame: what `id:` and `event:` said, and `data:` parsed. */
export interface StreamedEvent {
  readonly id: string
  readonly event: string
  readonly data: Event
}

/** What a stream sent before it ended or the wait gave up. */
export class StreamEnded extends Data.TaggedError("StreamEnded")<{ readonly message: string }> {}

/** The next frame never came within the bound: the stream is stuck, or what the test waits for never happens. */
export class FrameTimedOut extends Data.TaggedError("FrameTimedOut")<{ readonly message: string }> {}

/** Real seconds a test waits for one frame before it fails; events can wait for older transactions. */
const frameBoundSeconds = 30

const parseFrame = (block: string): Frame => {
  const fields: Record<string, string> = {}
  const comments: Array<string> = []
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) {
      comments.push(line.slice(1).trim())
      continue
    }
    const colon = line.indexOf(":")
    const name = colon === -1 ? line : line.slice(0, colon)
    const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "")
    fields[name] = fields[name] === undefined ? value : `${fields[name]}\n${value}`
  }
  return { ...fields, comments }
}

export interface StreamOptions {
  readonly key: string
  /** The query string, without `?`. */
  readonly query?: string | undefined
  readonly lastEventId?: string | undefined
}

/**
 * `GET /v1/events/stream` opened as an SSE client does, read frame by frame; closed (the connection
 * dropped, as a client that goes away) when the scope closes or `close` runs. A refused stream
 * answers its status, headers and problem body.
 */
export const openEventStream = (api: string, { key, query, lastEventId }: StreamOptions) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const controller = new AbortController()
      const response = await fetch(`${api}/v1/events/stream${query === undefined ? "" : `?${query}`}`, {
        headers: {
          authorization: `Bearer ${key}`,
          accept: "text/event-stream",
          ...(lastEventId === undefined ? {} : { "last-event-id": lastEventId })
        },
        signal: controller.signal
      })
      return { controller, response }
    }),
    ({ controller }) => Effect.sync(() => controller.abort())
  ).pipe(
    Effect.flatMap(({ controller, response }) =>
      Effect.gen(function* () {
        if (response.status !== 200) {
          const text = yield* Effect.promise(() => response.text())
          return {
            status: response.status,
            headers: response.headers,
            problem: JSON.parse(text) as Record<string, any>
          } as const
        }
        const reader = response.body!.getReader()
        const decoder = new TextDecoder()
        let buffer = ""
        let ended = false
        /** Why reading failed, when the connection broke rather than ended. */
        let broken: unknown = undefined
        /** Every frame received so far, in order. */
        const frames: Array<Frame> = []

        const readFrame: Effect.Effect<Frame | undefined> = Effect.promise(async () => {
          for (;;) {
            const end = buffer.indexOf("\n\n")
            if (end !== -1) {
              const block = buffer.slice(0, end)
              buffer = buffer.slice(end + 2)
              const frame = parseFrame(block)
              frames.push(frame)
              return frame
            }
            if (ended) return undefined
            const { done, value } = await reader.read().catch((error: unknown) => {
              broken = error ?? "broken"
              return { done: true, value: undefined }
            })
            if (done) ended = true
            else buffer += decoder.decode(value, { stream: true })
          }
        })

        const nextFrame = readFrame.pipe(
          Effect.timeoutOrElse({
            duration: `${frameBoundSeconds} seconds`,
            orElse: () =>
              Effect.fail(
                new FrameTimedOut({
                  message: `no frame within ${frameBoundSeconds} s; received so far: ${JSON.stringify(frames)}`
                })
              )
          })
        )

        /** The next event frame (comments and `retry:` skipped); fails if the stream ends first. */
        const nextEvent: Effect.Effect<StreamedEvent, StreamEnded | FrameTimedOut> = Effect.gen(function* () {
          for (;;) {
            const frame = yield* nextFrame
            if (frame === undefined) {
              return yield* new StreamEnded({
                message: `the stream ended; received: ${JSON.stringify(frames)}`
              })
            }
            if (frame.data !== undefined) {
              return { id: frame.id!, event: frame.event!, data: JSON.parse(frame.data) as Event }
            }
          }
        })

        /** Events until (and with) the first that `last` accepts, at most `most` of them. */
        const eventsThrough = (last: (event: StreamedEvent) => boolean, most = 500) =>
          Effect.gen(function* () {
            const seen: Array<StreamedEvent> = []
            for (let i = 0; i < most; i++) {
              const event = yield* nextEvent
              seen.push(event)
              if (last(event)) return seen
            }
            return yield* new StreamEnded({ message: `${most} events and still not the last one` })
          })

        /** Waits for the stream to end cleanly (not a broken connection); fails if an event comes first. */
        const ends = Effect.gen(function* () {
          for (;;) {
            const frame = yield* nextFrame
            if (frame === undefined) {
              if (broken === undefined) return
              return yield* new StreamEnded({
                message: `the connection broke instead of ending: ${String(broken)}`
              })
            }
            if (frame.data !== undefined) {
              return yield* new StreamEnded({ message: `an event came instead of the end: ${frame.data}` })
            }
          }
        })

        return {
          status: response.status,
          headers: response.headers,
          frames,
          nextFrame,
          nextEvent,
          eventsThrough,
          ends,
          /** Drops the connection, as a client that goes away. */
          close: Effect.sync(() => controller.abort())
        } as const
      })
    )
  )

export type OpenedStream = Extract<Effect.Success<ReturnType<typeof openEventStream>>, { frames: unknown }>
export type RefusedStream = Extract<Effect.Success<ReturnType<typeof openEventStream>>, { problem: unknown }>

/** The stream opened (200), or the test fails naming what was answered instead. */
export const openedEventStream = (api: string, options: StreamOptions) =>
  Effect.flatMap(openEventStream(api, options), (stream) =>
    "problem" in stream
      ? Effect.die(new Error(`the stream was refused: ${stream.status} ${JSON.stringify(stream.problem)}`))
      : Effect.succeed(stream)
  )

/** The stream refused, with its problem, or the test fails because it opened. */
export const refusedEventStream = (api: string, options: StreamOptions) =>
  Effect.flatMap(openEventStream(api, options), (stream) =>
    "problem" in stream
      ? Effect.succeed(stream)
      : Effect.die(new Error(`the stream opened (${stream.status}) where a refusal was expected`))
  )

/**
 * The gateway's own event log on the test's database connection, as every part of the gateway
 * appends events (in the transaction of the change, with its notification): for events in bulk, and
 * for an event whose transaction the test holds open.
 */
export const eventLogOf = (gateway: RunningGateway) =>
  Effect.map(
    Layer.build(
      layerEventLog.pipe(
        Layer.provideMerge(layerSqlFor(gateway.databaseUrl)),
        Layer.provide(Layer.succeedContext(gateway.services))
      )
    ),
    (context) => ({ log: Context.get(context, EventLog), sql: Context.get(context, SqlClient.SqlClient) })
  ).pipe(Effect.orDie)
