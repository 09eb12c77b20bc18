import { Effect, Option, Redacted } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import type { GatewayConfig } from "../config.ts"

export const adminTokenFile = (dataDir: string) => path.join(dataDir, "admin-token")

/** The operator token: `WHATISUP_ADMIN_TOKEN`, else (development) one generated once into the data dir. */
export const operatorToken = (config: GatewayConfig) =>
  Effect.gen(function* () {
    if (Option.isSome(config.adminToken)) return config.adminToken.value
    const file = adminTokenFile(config.dataDir)
    if (!fs.existsSync(file)) {
      fs.mkdirSync(config.dataDir, { recursive: true })
      fs.writeFileSync(file, `${crypto.randomBytes(32).toString("base64url")}\n`, { mode: 0o600 })
    }
    yield* Effect.logInfo("admin token file (the CLI reads it)").pipe(Effect.annotateLogs({ file }))
    return Redacted.make(fs.readFileSync(file, "utf8").trim())
  })

export const tokensMatch = (expected: Redacted.Redacted<string>, presented: string) => {
  const a = crypto.createHash("sha256").update(Redacted.value(expected)).digest()
  const b = crypto.createHash("sha256").update(presented).digest()
  return crypto.timingSafeEqual(a, b)
}
