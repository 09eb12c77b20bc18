import { startEmbeddedPostgres } from "@whatisup/server/db/embedded"
import { Effect, Redacted, References } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/**
 * The PostgreSQL server each benchmark creates its database on, for the scope's lifetime:
 * DATABASE_URL's server when it is set, else an embedded one in a temporary directory.
 */
export const postgresServer = Effect.gen(function* () {
  const fromEnv = process.env.DATABASE_URL
  if (fromEnv !== undefined && fromEnv !== "") return { url: fromEnv, where: "DATABASE_URL's server" }
  const dataDir = yield* Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "whatisup-bench-pg-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )
  const url = yield* startEmbeddedPostgres(dataDir).pipe(
    Effect.provideService(References.MinimumLogLevel, "Warn")
  )
  return { url: Redacted.value(url), where: "embedded PostgreSQL" }
})
