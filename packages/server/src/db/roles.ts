import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted, Schema } from "effect"
import * as Reactivity from "effect/reactivity/Reactivity"
import type { SqlClient } from "effect/sql"
import { decodeRows } from "./transaction.ts"

/** The role an embedded database serves the gateway as; the database's superuser owns the tables. */
export const embeddedServingRole = "whatisup_gateway"

/** A short-lived connection, closed with the scope: for migrations and role upkeep, not for serving. */
export const connectOnce = (url: Redacted.Redacted<string>, applicationName: string) =>
  PgClient.make({ url, maxConnections: 1, applicationName, connectTimeout: "10 seconds" }).pipe(
    Effect.provide(Reactivity.layer)
  )

const Name = Schema.Struct({ name: Schema.String })

export const currentRole = (sql: SqlClient.SqlClient) =>
  Effect.map(sql`SELECT current_user AS name`.pipe(decodeRows(Name)), (rows) => rows[0]!.name)

/**
 * Run by the owner after every migration: the serving role may read and write the gateway's tables
 * but owns none (so it can neither alter nor disable their triggers), and the audit log only takes
 * rows and shows them.
 */
export const grantServingRole = (owner: SqlClient.SqlClient, role: string) =>
  Effect.gen(function* () {
    const [schema] = yield* owner`SELECT current_schema() AS name`.pipe(decodeRows(Name))
    const inSchema = owner(schema!.name)
    const to = owner(role)
    yield* owner`GRANT USAGE ON SCHEMA ${inSchema} TO ${to}`
    yield* owner`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${inSchema} TO ${to}`
    yield* owner`GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA ${inSchema} TO ${to}`
    yield* owner`REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_events FROM ${to}`
    yield* owner`REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON whatisup_migrations FROM ${to}`
  })

/**
 * Whether the role serving requests could alter the audit log (disable its trigger, drop it): a
 * superuser, or the owner of its table (or a member of the owner's role).
 */
export const servingRoleCanAlterAudit = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql`
      SELECT (r.rolsuper OR pg_has_role(current_user, c.relowner, 'MEMBER')) AS can_alter
      FROM pg_roles r, pg_class c
      WHERE r.rolname = current_user AND c.oid = 'audit_events'::regclass`.pipe(
      decodeRows(Schema.Struct({ can_alter: Schema.Boolean }))
    ),
    (rows) => rows[0]?.can_alter ?? true
  )

/**
 * On an embedded database, as its superuser: the serving role exists, logs in with `password`, and is
 * nothing more than a login. Yields the URL to serve with.
 */
export const ensureEmbeddedServingRole = (ownerUrl: Redacted.Redacted<string>, password: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      // the password is written into the statement (roles take no parameters): only these characters
      if (!/^[A-Za-z0-9_-]{16,}$/.test(password)) return yield* Effect.die("unexpected serving role password")
      const sql = yield* connectOnce(ownerUrl, "whatisup-roles")
      const existing =
        yield* sql`SELECT rolname AS name FROM pg_roles WHERE rolname = ${embeddedServingRole}`.pipe(
          decodeRows(Name)
        )
      yield* sql.unsafe(
        `${existing.length === 0 ? "CREATE" : "ALTER"} ROLE ${embeddedServingRole}
          LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '${password}'`
      )
      const url = new URL(Redacted.value(ownerUrl))
      url.username = embeddedServingRole
      url.password = password
      return Redacted.make(url.toString())
    })
  )
