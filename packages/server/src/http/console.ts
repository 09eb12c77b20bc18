import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { compressed } from "./compression.ts"

/** The console's own files: the page, its modules and its style sheet. */
const consoleDir = path.resolve(import.meta.dirname, "../../console")

const moduleFile = (specifier: string) => fileURLToPath(import.meta.resolve(specifier))

/** The UI library's modules, served from the installed packages (nothing is fetched from elsewhere). */
const vendor: Record<string, string> = {
  "vendor/preact.mjs": moduleFile("preact"),
  "vendor/hooks.mjs": moduleFile("preact/hooks"),
  "vendor/htm.mjs": moduleFile("htm")
}

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml"
}

/** Every file under the console's folder, by its path below /console/. */
const consoleFiles = (dir: string, prefix = ""): Array<[string, string]> =>
  fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) =>
      entry.isDirectory()
        ? consoleFiles(path.join(dir, entry.name), `${prefix}${entry.name}/`)
        : [[`${prefix}${entry.name}`, path.join(dir, entry.name)] as [string, string]]
    )

/**
 * The policy the console's pages run under: scripts, styles, images and requests from the gateway
 * itself only; the one inline script is the import map, allowed by its hash.
 */
const contentSecurityPolicy = (page: string) => {
  const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(page)?.[1]
  const hash =
    importMap === undefined
      ? ""
      : ` 'sha256-${crypto.createHash("sha256").update(importMap).digest("base64")}'`
  return [
    "default-src 'none'",
    `script-src 'self'${hash}`,
    "style-src 'self'",
    "img-src 'self' blob: data:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'"
  ].join("; ")
}

/**
 * The customer's console, static files served at /console on the public listener: a page that talks
 * to the public API with the API key pasted into it (kept in the tab's session storage only).
 */
export const layerConsole = Layer.unwrap(
  Effect.sync(() => {
    const files = new Map([...consoleFiles(consoleDir), ...Object.entries(vendor)])
    const page = fs.readFileSync(path.join(consoleDir, "index.html"), "utf8")
    const headers = {
      "content-security-policy": contentSecurityPolicy(page),
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "x-frame-options": "DENY",
      "cache-control": "no-cache"
    }
    // made once: the same body every time, so it is compressed once
    const responses = new Map(
      [...files].map(([name, file]) => [
        name,
        HttpServerResponse.uint8Array(fs.readFileSync(file), {
          contentType: contentTypes[path.extname(name)] ?? "application/octet-stream",
          headers
        })
      ])
    )
    const serve = (request: HttpServerRequest.HttpServerRequest) => {
      const name = request.url.split(/[?#]/)[0]!.replace(/^\/console\/?/, "")
      const response = responses.get(name === "" ? "index.html" : name)
      return Effect.succeed(
        response === undefined ? HttpServerResponse.empty({ status: 404 }) : compressed(request, response)
      )
    }
    // the one route takes /console, /console/ and every file below
    return HttpRouter.add("GET", "/console/*", serve)
  })
)
