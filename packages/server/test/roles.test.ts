import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { newCustomer } from "./support/admin.ts"
import { sqlFor } from "./support/database.ts"
import { gatewayEnvironment, scopedDataDir, startGateway } from "./support/gateway.ts"

/** A URL to the embedded PostgreSQL a gateway runs in `dataDir`, as `user`. */
const embeddedUrl = (dataDir: string, user: string, passwordFile: string) => {
  const port = fs
    .readFileSync(path.join(dataDir, "postgres", "postmaster.pid"), "utf8")
    .split("\n")[3]!
    .trim()
  const password = fs.readFileSync(path.join(dataDir, passwordFile), "utf8").trim()
  return `postgresql://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}/whatisup`
}

describe("database roles", () => {
  it.live(
    "on its embedded database the gateway migrates as the superuser and serves as a role that cannot touch the audit log",
    () =>
      Effect.gen(function* () {
        const probe = yield* gatewayEnvironment("postgresql://unused")
        const { DATABASE_URL: _, ...env } = { ...probe, WHATISUP_DATA_DIR: yield* scopedDataDir }
        // twice: the first start makes the serving role, a restart finds it
        for (const start of ["first", "restart"]) {
          // closed by the test's scope too, when the test fails before it closes it
          const scope = yield* Scope.fork(yield* Scope.Scope)
          const gateway = yield* startGateway(env).pipe(Scope.provide(scope))
          const { client } = yield* newCustomer(gateway, { name: `Embedded ${start}` })
          yield* client.channels.create({ headers: {}, payload: {} })

          const superuser = yield* sqlFor(embeddedUrl(env.WHATISUP_DATA_DIR, "postgres", "postgres-password"))
          const roles = yield* superuser<{ role: string }>`
            SELECT DISTINCT usename AS role FROM pg_stat_activity WHERE application_name = 'whatisup'`
          expect(roles.map((r) => r.role)).toEqual(["whatisup_gateway"])
          const owners = yield* superuser<{ owner: string }>`
            SELECT DISTINCT tableowner AS owner FROM pg_tables WHERE schemaname = 'public'`
          expect(owners.map((o) => o.owner)).toEqual(["postgres"])

          const serving = yield* sqlFor(
            embeddedUrl(env.WHATISUP_DATA_DIR, "whatisup_gateway", "postgres-gateway-password")
          )
          for (const statement of [
            serving`ALTER TABLE audit_events DISABLE TRIGGER ALL`,
            serving`UPDATE audit_events SET action = 'nothing'`,
            serving`DELETE FROM audit_events`
          ]) {
            const exit = yield* Effect.exit(statement)
            expect(String(Exit.isFailure(exit) ? exit.cause : "succeeded")).toMatch(
              /must be owner|permission denied/
            )
          }
          yield* Scope.close(scope, Exit.void)
        }
      }).pipe(Effect.scoped),
    180_000
  )
})
