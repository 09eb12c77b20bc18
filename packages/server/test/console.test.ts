import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import jsqr from "jsqr"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type Browser, chromium, type Page } from "playwright-core"
import QRCode from "qrcode"
import { newCustomer } from "./support/admin.ts"
import { testDatabase } from "./support/database.ts"
import { gatewayEnvironment, tempDataDir } from "./support/gateway.ts"
import { request } from "./support/http.ts"
import { spawnGateway, waitReady } from "./support/process.ts"
import { startReceiver } from "./support/receiver.ts"
import { deliverTo, simulator } from "./support/simulator.ts"

/** What the functions evaluated in the page see of it. */
declare const document: {
  querySelector: (selector: string) => any
  querySelectorAll: (selector: string) => Iterable<any>
  createElement: (tag: string) => any
}

const chromiumPath = "/usr/bin/chromium"
const hasChromium = fs.existsSync(chromiumPath)
const skipped = hasChromium ? "" : ` (skipped: no Chromium at ${chromiumPath}; apt-get install chromium)`
if (!hasChromium)
  process.stderr.write(`the console's browser test is skipped: no Chromium at ${chromiumPath}\n`)

/** Where the screenshots go: WHATISUP_SCREENSHOTS (docs/console for the README), else a temporary folder. */
const screenshots =
  process.env["WHATISUP_SCREENSHOTS"] ?? fs.mkdtempSync(path.join(os.tmpdir(), "whatisup-console-"))

const PHONE = "15551239001"
const CONTACT = "15557779001"

/** Long enough for Baileys against the simulator on a busy machine; a wait that runs out fails the test. */
const patience = { timeout: 60_000 }

/**
 * The gateway as a person runs it, in a process of its own (the browser's and the QR decoder's work in
 * this one must not hold up its event loop), on real Baileys and the simulator, trusting the
 * simulator's media host.
 */
const gatewayProcess = (extra: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const sim = yield* simulator
    const database = yield* testDatabase
    const mediaCa = path.join(tempDataDir(), "simulator-media-ca.pem")
    fs.writeFileSync(mediaCa, sim.mediaCertificate)
    const env = yield* gatewayEnvironment(database, {
      WHATISUP_WA_WS_URL: sim.url,
      WHATISUP_WA_MEDIA_HOST: sim.mediaHost,
      NODE_EXTRA_CA_CERTS: mediaCa,
      ...extra
    })
    const api = `http://127.0.0.1:${env.PORT}`
    yield* Effect.tap(spawnGateway(env), (gateway) => waitReady(gateway, api))
    return {
      sim,
      gateway: { api, admin: `http://${env.WHATISUP_ADMIN_LISTEN}`, adminToken: env.WHATISUP_ADMIN_TOKEN }
    }
  })

const browser = Effect.acquireRelease(
  Effect.promise(() => chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] })),
  (browser: Browser) => Effect.promise(() => browser.close())
)

/** A page that records what would otherwise go unnoticed: script errors and policy violations. */
const openPage = (opened: Browser, viewport = { width: 1280, height: 900 }) =>
  Effect.promise(async () => {
    const page = await opened.newPage({ viewport })
    const problems: Array<string> = []
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`))
    page.on("console", (message) => {
      if (message.type() === "error" && !/status of 4\d\d/.test(message.text())) {
        problems.push(`console error: ${message.text()}`)
      }
    })
    const questions: Array<string> = []
    page.on("dialog", (dialog) => {
      questions.push(dialog.message())
      void dialog.accept()
    })
    return { page, problems, questions }
  })

/** The page as it was when something the test waited for never came, to see why. */
let failingPage: Page | undefined

const step = <A>(run: () => Promise<A>) =>
  Effect.promise(async () => {
    try {
      return await run()
    } catch (error) {
      await failingPage
        ?.screenshot({ path: path.join(screenshots, "failure.png"), fullPage: true })
        .catch(() => undefined)
      throw error
    }
  })

const shoot = (page: Page, name: string) =>
  step(() => page.screenshot({ path: path.join(screenshots, `${name}.png`), fullPage: true }))

/** The QR as the page shows it: the image's pixels, decoded. */
const qrOnPage = (page: Page) =>
  step(async () => {
    await page.getByTestId("qr").waitFor(patience)
    const image = await page.evaluate(async () => {
      const img = document.querySelector('[data-testid="qr"]')
      await img.decode()
      const canvas = document.createElement("canvas")
      canvas.width = img.naturalWidth
      canvas.height = img.naturalHeight
      const context = canvas.getContext("2d")
      context.drawImage(img, 0, 0)
      const pixels = context.getImageData(0, 0, canvas.width, canvas.height)
      return { width: pixels.width, height: pixels.height, data: Array.from(pixels.data) as Array<number> }
    })
    const decoded = jsqr.default(Uint8ClampedArray.from(image.data), image.width, image.height)
    if (decoded === null) throw new Error("the page's QR image does not decode")
    return decoded.data
  })

/** Every form control the page shows has a label a screen reader announces. */
const unlabelledControls = (page: Page) =>
  step(() =>
    page.evaluate(() =>
      [...document.querySelectorAll("input, select, textarea")]
        .filter((control) => control.labels.length === 0 && !control.getAttribute("aria-label"))
        .map((control) => control.outerHTML as string)
    )
  )

describe("the console in a real browser", () => {
  it.effect.skipIf(!hasChromium)(
    `sign in, pair a phone by QR, send and receive live, create a webhook and see its deliveries${skipped}`,
    () =>
      Effect.gen(function* () {
        const receiver = yield* startReceiver()
        const { sim, gateway } = yield* gatewayProcess({ WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32" })
        const customer = yield* newCustomer(gateway, {
          name: "Console User",
          plan: { messages_per_minute: 10_000 }
        })
        const opened = yield* browser
        const { page, problems, questions } = yield* openPage(opened)
        failingPage = page

        // the console is served by the gateway, under a policy that allows only the gateway itself
        const served = yield* request(gateway.api, "GET", "/console/")
        expect(served.status).toBe(200)
        expect(served.headers.get("content-security-policy")).toMatch(
          /default-src 'none'; script-src 'self' 'sha256-/
        )
        expect(served.headers.get("content-security-policy")).toContain("connect-src 'self'")

        // sign in: a wrong key is refused with the API's own words, then the real one
        yield* step(() => page.goto(`${gateway.api}/console`))
        yield* shoot(page, "sign-in")
        yield* step(async () => {
          await page.getByLabel("API key").fill("wiu_not-a-key-of-this-gateway-at-all-00000")
          await page.getByRole("button", { name: "Sign in" }).click()
          await page.getByRole("alert").waitFor(patience)
        })
        expect(yield* step(() => page.getByRole("alert").innerText())).toMatch(/key/i)
        yield* step(async () => {
          await page.getByLabel("API key").fill(customer.key)
          await page.getByRole("button", { name: "Sign in" }).click()
          await page.getByRole("heading", { name: "Channels" }).waitFor(patience)
          await page.getByText("Live", { exact: true }).waitFor(patience)
        })
        // the key is in this tab's session storage, nowhere else
        const storage = yield* step(() =>
          page.evaluate(() => ({
            session: JSON.stringify({ ...(globalThis as any).sessionStorage }),
            local: JSON.stringify({ ...(globalThis as any).localStorage }),
            cookies: (globalThis as any).document.cookie as string
          }))
        )
        expect(storage.session).toContain(customer.key)
        expect(storage.local).not.toContain(customer.key)
        expect(storage.cookies).toBe("")

        // create a channel and connect it by QR; the phone scans the QR read from the page's image
        yield* step(async () => {
          await page.getByLabel("New channel name").fill("support")
          await page.getByRole("button", { name: "Create channel" }).click()
          await page.getByRole("heading", { name: "support" }).waitFor(patience)
          await page.getByRole("button", { name: "Connect" }).click()
        })
        const qr = yield* qrOnPage(page)
        expect(qr).toMatch(/^https:\/\/wa\.me\/settings\/linked_devices#/)
        yield* shoot(page, "channel-qr")
        // marks this document: a reload would lose the mark
        yield* step(() => page.evaluate(() => ((globalThis as any).consoleTestMark = "same document")))
        yield* step(() => sim.scan(qr, { phoneNumber: PHONE }))
        yield* step(() =>
          page.locator('[data-testid="channel-status"] .status', { hasText: /^connected$/ }).waitFor(patience)
        )
        expect(yield* step(() => page.evaluate(() => (globalThis as any).consoleTestMark))).toBe(
          "same document"
        )
        expect(yield* step(() => page.getByText("+15551239001").count())).toBeGreaterThan(0)
        yield* shoot(page, "channel")

        // messages: a bad number is refused naming the field; a text goes out and reaches read, live
        yield* step(async () => {
          await page.getByRole("link", { name: "Messages" }).click()
          await page.getByRole("heading", { name: "Messages" }).waitFor(patience)
          await page.getByLabel("To (E.164)").fill("12345")
          await page.getByLabel("Text").fill("nope")
          await page.getByRole("button", { name: "Send text" }).click()
          await page.getByRole("alert").waitFor(patience)
        })
        expect(yield* step(() => page.getByRole("alert").innerText())).toContain("to")
        yield* step(async () => {
          await page.getByLabel("To (E.164)").fill(`+${CONTACT}`)
          await page.getByLabel("Text").fill("Hello from the console")
          await page.getByRole("button", { name: "Send text" }).click()
          await page
            .locator("tr", { hasText: "Hello from the console" })
            .locator('[data-testid="message-status"] .status', { hasText: /^read$/ })
            .waitFor(patience)
        })

        // an inbound text and an inbound image appear without a reload; the image opens through the API
        const picture = yield* step(() => QRCode.toBuffer("a picture", { type: "png" }))
        yield* deliverTo(sim, PHONE, {
          from: CONTACT,
          message: { conversation: "Hi console, it's the phone" }
        })
        yield* deliverTo(sim, PHONE, {
          from: CONTACT,
          media: { kind: "image", bytes: picture, mimetype: "image/png", caption: "a picture" }
        })
        yield* step(async () => {
          await page.locator("tr", { hasText: "Hi console, it's the phone" }).waitFor(patience)
          const row = page.locator("tr", { hasText: "image: a picture" })
          await row.getByRole("button", { name: "Open image" }).click()
          await row.getByRole("img", { name: "a picture" }).waitFor(patience)
        })
        const shown = yield* step(() =>
          page.evaluate(async () => {
            const img = document.querySelector("img.media")
            await img.decode()
            return { width: img.naturalWidth as number, height: img.naturalHeight as number }
          })
        )
        expect(shown.width).toBeGreaterThan(0)
        expect(yield* step(() => page.evaluate(() => (globalThis as any).consoleTestMark))).toBe(
          "same document"
        )
        yield* shoot(page, "messages")

        // a webhook endpoint: its secret shown once; a test event delivered, with its attempt
        yield* step(async () => {
          await page.getByRole("link", { name: "Webhooks" }).click()
          await page.getByLabel("URL").fill(`${receiver.url}/hooks`)
          await page.getByLabel("Description (optional)").fill("orders service")
          await page.getByRole("button", { name: "Create endpoint" }).click()
          await page.getByTestId("secret").waitFor(patience)
        })
        expect(yield* step(() => page.getByTestId("secret").innerText())).toMatch(
          /^whsec_[A-Za-z0-9+/=]{40,}$/
        )
        yield* shoot(page, "webhooks")
        yield* step(async () => {
          await page.getByRole("link", { name: `${receiver.url}/hooks` }).click()
          await page.getByRole("button", { name: "Send a test event" }).click()
          const row = page.locator("tr", { hasText: "webhook.test" })
          await row
            .locator('[data-testid="delivery-status"] .status', { hasText: /^succeeded$/ })
            .waitFor(patience)
          await row.getByRole("button", { name: "Attempts" }).click()
          await row.getByText(/#1 · .* · 200 · \d+ ms/).waitFor(patience)
        })
        expect(receiver.received.some((received) => received.body.includes('"type":"webhook.test"'))).toBe(
          true
        )
        yield* shoot(page, "webhook-deliveries")
        const firstSecret = yield* step(() => page.getByRole("main").getByTestId("secret").count())
        expect(firstSecret).toBe(0)
        yield* step(async () => {
          await page.getByRole("button", { name: "Rotate secret" }).click()
          await page.getByTestId("secret").waitFor(patience)
          await page.getByRole("button", { name: "Disable" }).click()
          await page.locator(".facts .status", { hasText: /^disabled$/ }).waitFor(patience)
        })
        expect(yield* step(() => page.getByTestId("secret").innerText())).toMatch(/^whsec_/)

        // API keys: a new one shown once, then revoked
        yield* step(async () => {
          await page.getByRole("link", { name: "API keys" }).click()
          await page.getByLabel("Name").fill("from the console")
          await page.getByRole("button", { name: "Create key" }).click()
          await page.getByTestId("secret").waitFor(patience)
        })
        const newKey = yield* step(() => page.getByTestId("secret").innerText())
        expect(newKey).toMatch(/^wiu_/)
        expect((yield* request(gateway.api, "GET", "/v1/me", { key: newKey })).status).toBe(200)
        yield* shoot(page, "api-keys")
        yield* step(async () => {
          await page
            .locator("tr", { hasText: "from the console" })
            .getByRole("button", { name: "Revoke" })
            .click()
          await page
            .locator("tr", { hasText: "from the console" })
            .getByRole("button", { name: "Revoke" })
            .waitFor({
              state: "detached",
              ...patience
            })
        })
        expect((yield* request(gateway.api, "GET", "/v1/me", { key: newKey })).status).toBe(401)

        // the audit log lists what was done here
        yield* step(async () => {
          await page.getByRole("link", { name: "Audit log" }).click()
          await page.getByRole("cell", { name: "api_key.revoked" }).waitFor(patience)
        })
        yield* shoot(page, "audit-log")
        expect(yield* unlabelledControls(page)).toEqual([])

        // a restart from the channel's page: the channel goes through reconnecting back to connected, live
        yield* step(async () => {
          await page.getByRole("link", { name: "Channels" }).click()
          await page.getByRole("link", { name: "support" }).click()
          await page.getByRole("button", { name: "Restart" }).click()
          await page
            .locator('[data-testid="channel-status"] .status', { hasText: /^connected$/ })
            .waitFor(patience)
        })

        // on a phone-sized screen, the same console
        const phone = yield* openPage(opened, { width: 390, height: 844 })
        yield* step(async () => {
          await phone.page.goto(`${gateway.api}/console`)
          await phone.page.getByLabel("API key").fill(customer.key)
          await phone.page.getByRole("button", { name: "Sign in" }).click()
          await phone.page.getByRole("link", { name: "support" }).waitFor(patience)
        })
        const overflow = yield* step(() =>
          phone.page.evaluate(() => {
            const root = (globalThis as any).document.documentElement
            return root.scrollWidth - root.clientWidth
          })
        )
        expect(overflow).toBeLessThanOrEqual(0)
        yield* shoot(phone.page, "channels-phone")

        // deleted, after the page asked (the test accepts every question)
        const channelId = yield* step(() => page.getByText(/^ch_/).innerText())
        yield* step(async () => {
          await page.getByRole("button", { name: "Delete" }).click()
          await page.getByRole("heading", { name: "Channels" }).waitFor(patience)
        })
        expect(
          (yield* request(gateway.api, "GET", `/v1/channels/${channelId}`, { key: customer.key })).status
        ).toBe(404)
        expect(questions.length).toBeGreaterThanOrEqual(3)

        expect([...problems, ...phone.problems]).toEqual([])
      }).pipe(Effect.scoped),
    240_000
  )

  it.effect.skipIf(!hasChromium)(
    `a key bound to a channel sees that channel alone, and no key management${skipped}`,
    () =>
      Effect.gen(function* () {
        const { sim, gateway } = yield* gatewayProcess()
        const customer = yield* newCustomer(gateway, { name: "Bound Console" })
        // names are shown as text, never read as markup
        const mine = yield* customer.client.channels.create({
          headers: {},
          payload: { name: `mine <img src=x onerror="globalThis.injected=1"><b>bold</b>` }
        })
        yield* customer.client.channels.create({ headers: {}, payload: { name: "theirs" } })
        const bound = yield* customer.client.apiKeys.create({ headers: {}, payload: { channel_id: mine.id } })
        const opened = yield* browser
        const { page, problems } = yield* openPage(opened)
        failingPage = page
        yield* step(async () => {
          await page.goto(`${gateway.api}/console`)
          await page.getByLabel("API key").fill(bound.key)
          await page.getByRole("button", { name: "Sign in" }).click()
          await page.getByRole("heading", { name: mine.name! }).waitFor(patience)
        })
        expect(yield* step(() => page.evaluate(() => (globalThis as any).injected))).toBeUndefined()
        expect(yield* step(() => page.locator("main img, main b").count())).toBe(0)
        expect(yield* step(() => page.getByRole("link", { name: "API keys" }).count())).toBe(0)
        expect(yield* step(() => page.getByText("theirs").count())).toBe(0)
        // its channel connected by pairing code: the code shown large, typed by the phone, connected live
        yield* step(async () => {
          await page.getByLabel("Type a pairing code into the phone").check()
          await page.getByLabel("Phone number (E.164)").fill("+15551239002")
          await page.getByRole("button", { name: "Connect" }).click()
          await page.getByTestId("pairing-code").waitFor(patience)
        })
        const code = yield* step(() => page.getByTestId("pairing-code").innerText())
        expect(code).toMatch(/^[A-Z0-9]{8}$/)
        yield* shoot(page, "channel-pairing-code")
        yield* step(() => sim.enterPairingCode("15551239002", code))
        yield* step(() =>
          page.locator('[data-testid="channel-status"] .status', { hasText: /^connected$/ }).waitFor(patience)
        )
        // its channel's page, reached by address, answers as the API does: not found
        yield* step(async () => {
          await page.goto(`${gateway.api}/console/#/channels/ch_00000000000000000000000000`)
          await page.getByRole("alert").filter({ hasText: "No such channel" }).waitFor(patience)
          await page.getByText("Live", { exact: true }).waitFor(patience)
        })
        // its key revoked mid-session: the live stream ends, and the page says why in the API's words
        yield* customer.client.apiKeys.revoke({ params: { id: bound.id } })
        yield* step(async () => {
          await page
            .getByRole("alert")
            .filter({ hasText: "The API key is unknown or revoked" })
            .waitFor(patience)
          await page.getByText("Not live", { exact: true }).waitFor(patience)
        })
        expect(problems).toEqual([])
      }).pipe(Effect.scoped),
    120_000
  )
})
