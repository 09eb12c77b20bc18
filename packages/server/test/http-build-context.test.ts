import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Schema } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { createServer } from "node:http"
import { serveRoutes } from "../src/http/server.ts"

class Greeting extends Context.Service<Greeting, string>()("test/Greeting") {}
class GroupOnly extends Context.Service<GroupOnly, string>()("test/GroupOnly") {}
class ServerOnly extends Context.Service<ServerOnly, string>()("test/ServerOnly") {}

const Seen = Schema.Struct({ greeting: Schema.String, groupOnly: Schema.String, serverOnly: Schema.String })

const TestApi = HttpApi.make("test").add(
  HttpApiGroup.make("seen").add(HttpApiEndpoint.get("seen", "/seen", { success: Seen }))
)

/** The handler reads every service at request time, from the request's context. */
const layerSeen = HttpApiBuilder.group(TestApi, "seen", (handlers) =>
  handlers.handle("seen", () =>
    Effect.all({ greeting: Greeting, groupOnly: GroupOnly, serverOnly: ServerOnly })
  )
).pipe(Layer.provide([Layer.succeed(Greeting, "group's"), Layer.succeed(GroupOnly, "group's own")]))

/**
 * Every request adds services of its own before the handler runs: a Greeting, which its group has
 * another of, and a ServerOnly, which its group has as the server has it (a group's build context
 * holds the server's services too). Effect provides the group's build context over the request's.
 */
const layerRequestServices = HttpRouter.middleware(
  (httpEffect) =>
    httpEffect.pipe(
      Effect.provideService(Greeting, "request's"),
      Effect.provideService(ServerOnly, "request's")
    ),
  { global: true }
)

const serve = <E, R>(routes: Layer.Layer<never, E, R>) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      serveRoutes(routes).pipe(
        Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
        Layer.provide([Layer.succeed(Greeting, "server's"), Layer.succeed(ServerOnly, "server's own")])
      )
    )
    const address = HttpServer.formatAddress(Context.get(context, HttpServer.HttpServer).address)
    const seen = () =>
      Effect.promise(() => fetch(`${address}/seen`).then((response) => response.json() as Promise<unknown>))
    return { seen }
  })

/**
 * What Effect's own merge gives a handler: its group's services over any other, the server's where
 * its group has none.
 */
const merged = { greeting: "group's", groupOnly: "group's own", serverOnly: "server's own" }

/** Serves `routes` and asks a few times what the handler sees. */
const seenOnEachRequest = <E, R>(routes: Layer.Layer<never, E, R>) =>
  Effect.gen(function* () {
    const { seen } = yield* serve(routes)
    for (let i = 0; i < 3; i++) expect(yield* seen()).toEqual(merged)
  }).pipe(Effect.scoped)

const layerApi = HttpApiBuilder.layer(TestApi).pipe(Layer.provide(layerSeen))

// HttpApiBuilder is patched (patches/effect+4.1.0.patch) to provide a handler's build services
// without copying each request's whole context: what a handler sees must not change
describe("a handler's services at request time", () => {
  it.effect("are its group's, over the server's, with the server's it does not have", () =>
    seenOnEachRequest(layerApi)
  )

  it.effect("are its group's, over what a middleware added for the request", () =>
    seenOnEachRequest(Layer.mergeAll(layerApi, layerRequestServices))
  )
})
