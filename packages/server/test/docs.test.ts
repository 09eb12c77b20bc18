import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import { type Browser, chromium } from "playwright-core"
import { newCustomer } from "./support/admin.ts"
import { layerTestGateway, TestGateway } from "./support/gateway.ts"

/** The page's DOM, as the functions evaluated in the browser see it. */
declare const document: { querySelectorAll: (selector: string) => Iterable<{ readonly innerText: string }> }

const chromiumPath = "/usr/bin/chromium"
const hasChromium = fs.existsSync(chromiumPath)
const skipped = hasChromium ? "" : ` (skipped: no Chromium at ${chromiumPath}; apt-get install chromium)`
if (!hasChromium)
  process.stderr.write(`the /docs browser checks are skipped: no Chromium at ${chromiumPath}\n`)

const browser = Effect.acquireRelease(
  Effect.promise(() => chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] })),
  (browser: Browser) => Effect.promise(() => browser.close())
)

/** The code blocks /docs shows once the page has rendered the operation at `anchor`. */
const renderedBlocks = (url: string, anchor: string, expected: string) =>
  Effect.gen(function* () {
    const opened = yield* browser
    const page = yield* Effect.promise(() => opened.newPage())
    yield* Effect.promise(() => page.goto(`${url}/docs#${anchor}`))
    yield* Effect.promise(() =>
      page.waitForFunction(
        (text) => [...document.querySelectorAll("pre")].some((pre) => pre.innerText.includes(text)),
        expected,
        { timeout: 60_000 }
      )
    )
    return yield* Effect.promise(() =>
      page.evaluate(() => [...document.querySelectorAll("pre")].map((pre) => pre.innerText))
    )
  })

layer(layerTestGateway(), { timeout: 120_000, excludeTestServices: true })("/docs in a browser", (it) => {
  it.effect.skipIf(!hasChromium)(
    `the curl the docs generate for a /v1 operation sends Authorization: Bearer, and works with a real key${skipped}`,
    () =>
      Effect.gen(function* () {
        const gateway = yield* TestGateway
        const blocks = yield* renderedBlocks(gateway.api, "tag/caller/GET/v1/me", `${gateway.api}/v1/me`)
        const curl = blocks.find((block) => block.startsWith(`curl ${gateway.api}/v1/me`))
        expect(curl, blocks.join("\n---\n")).toBeDefined()
        expect(curl).toContain("--header 'Authorization: Bearer ")
        expect(curl).not.toContain("Basic")

        // pasted with a real key in place of the placeholder, it answers 200
        const header = /--header 'Authorization: (Bearer [^']+)'/.exec(curl!)![1]!
        const { apiKey } = yield* newCustomer(gateway, { name: "Reader Of Docs" })
        const placeholder = header.slice("Bearer ".length)
        const answer = yield* Effect.promise(() =>
          fetch(`${gateway.api}/v1/me`, {
            headers: { authorization: header.replace(placeholder, apiKey.key) }
          })
        )
        expect(answer.status).toBe(200)
      }).pipe(Effect.scoped)
  )

  it.effect.skipIf(!hasChromium)(
    `the connect example sends a body the API accepts and shows the answer it gives${skipped}`,
    () =>
      Effect.gen(function* () {
        const { api } = yield* TestGateway
        const blocks = yield* renderedBlocks(api, "tag/channels/POST/v1/channels/{id}/connect", "/connect")
        const curl = blocks.find((block) => block.includes("/connect") && block.startsWith("curl "))
        expect(curl, blocks.join("\n---\n")).toMatch(/--data '\{\s*"method": "qr"\s*\}'/)
        expect(blocks).toContainEqual(expect.stringMatching(/^\{\s*"status": "pairing"\s*\}$/))
      }).pipe(Effect.scoped)
  )
})
