import { Api, ServiceUnavailable } from "@whatisup/domain"
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { SqlClient } from "effect/sql"
import { latestMigrationId } from "../db/migrations.ts"

export const layerSystemHttp = HttpApiBuilder.group(Api, "system", (handlers) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    return handlers
      .handle("healthz", () => Effect.succeed({ status: "ok" as const }))
      .handle("readyz", () =>
        sql<{ latest: number | null }>`SELECT max(migration_id)::int AS latest FROM whatisup_migrations`.pipe(
          Effect.flatMap((rows) =>
            (rows[0]?.latest ?? 0) >= latestMigrationId
              ? Effect.succeed({ status: "ok" as const })
              : Effect.fail(new ServiceUnavailable({ detail: "Migrations are not applied yet" }))
          ),
          Effect.catchTag("SqlError", () =>
            Effect.fail(new ServiceUnavailable({ detail: "The database is unreachable" }))
          )
        )
      )
  })
)
