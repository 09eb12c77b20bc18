import { OperatorAuth, OperatorUnauthorized } from "@whatisup/domain"
import { Effect, Layer, Option, Redacted } from "effect"
import * as crypto from "node:crypto"
import * as path from "node:path"
import { CurrentRequestId } from "../audit/requestId.ts"
import type { GatewayConfig } from "../config/config.ts"
import { readOrCreateSecret } from "../config/dataDir.ts"

export const adminTokenFile = (dataDir: string) => path.join(dataDir, "admin-token")

/** The operator token: `WHATISUP_ADMIN_TOKEN`, else (development) one generated once into the data dir. */
export const operatorToken = (config: GatewayConfig) =>
  Effect.gen(function* () {
    if (Option.isSome(config.adminToken)) return config.adminToken.value
    const file = adminTokenFile(config.dataDir)
    const token = readOrCreateSecret(file, () => crypto.randomBytes(32).toString("base64url"))
    yield* Effect.logInfo("admin token file (the CLI reads it)").pipe(Effect.annotateLogs({ file }))
    return Redacted.make(token)
  })

export const tokensMatch = (expected: Redacted.Redacted<string>, presented: string) => {
  const a = crypto.createHash("sha256").update(Redacted.value(expected)).digest()
  const b = crypto.createHash("sha256").update(presented).digest()
  return crypto.timingSafeEqual(a, b)
}

/** The operator token on every admin RPC, compared in constant time; each call gets a request id of its own. */
export const layerOperatorAuth = (token: Redacted.Redacted<string>) =>
  Layer.succeed(OperatorAuth, (effect, { headers }) => {
    const header = headers["authorization"] ?? ""
    const presented = header.startsWith("Bearer ") ? header.slice("Bearer ".length).trim() : ""
    return presented !== "" && tokensMatch(token, presented)
      ? Effect.provideService(effect, CurrentRequestId, `admin-${crypto.randomUUID()}`)
      : Effect.fail(new OperatorUnauthorized({ message: "the operator token is missing or wrong" }))
  })
