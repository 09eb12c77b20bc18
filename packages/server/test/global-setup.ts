import { Effect, Exit, Redacted, References, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { TestProject } from "vitest/node"
import { startEmbeddedPostgres } from "../src/db/embedded.ts"

declare module "vitest" {
  export interface ProvidedContext {
    /** A server where each test file creates (and drops) a database of its own. */
    testDatabaseUrl: string
  }
}

let scope: Scope.Closeable | undefined
let dataDir: string | undefined

/** DATABASE_URL when set (CI), else one embedded PostgreSQL for the whole run. */
export async function setup(project: TestProject) {
  const fromEnv = process.env.DATABASE_URL
  if (fromEnv !== undefined && fromEnv !== "") {
    project.provide("testDatabaseUrl", fromEnv)
    return
  }
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "whatisup-test-pg-"))
  scope = Effect.runSync(Scope.make())
  const url = await Effect.runPromise(
    startEmbeddedPostgres(dataDir).pipe(
      Scope.provide(scope),
      Effect.provideService(References.MinimumLogLevel, "Warn")
    )
  )
  project.provide("testDatabaseUrl", Redacted.value(url))
}

export async function teardown() {
  if (scope) await Effect.runPromise(Scope.close(scope, Exit.void))
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true })
}
