import {
  type AuditActor,
  type Channel,
  type ConnectRequest,
  type InvalidRequest,
  InvalidState,
  NotFound,
  PlanLimitReached
} from "@whatisup/domain"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer } from "effect"
import { Audit } from "../audit/audit.ts"
import { KeyRing } from "../crypto/keyRing.ts"
import { decodeCursor, defaultPageSize, toPage } from "../db/pagination.ts"
import { newId } from "../db/ids.ts"
import { AuthStates } from "./loginStore.ts"
import { EventLog } from "../events/eventLog.ts"
import { type ChannelRow, channelsChangedChannel, renderChannel } from "./rows.ts"
import { canMove, connectableStatuses, isRunning, runningStatuses } from "./status.ts"

/** Whose channel: a customer, and for a channel-bound key the one channel it may see. */
export interface Access {
  readonly customerId: string
  readonly onlyChannel: string | null
}

const notFound = () => new NotFound({ detail: "No such channel" })

/** The customer-facing side of channels: what should run, and everything the API may change. */
export class Channels extends Context.Service<
  Channels,
  {
    readonly create: (
      scope: Access,
      options: { readonly name: string | null; readonly actor: AuditActor }
    ) => Effect.Effect<Channel, PlanLimitReached>
    readonly list: (
      scope: Access,
      page: { readonly limit?: number | undefined; readonly cursor?: string | undefined }
    ) => Effect.Effect<{ data: Array<Channel>; next_cursor: string | null }, InvalidRequest>
    readonly get: (scope: Access, id: string) => Effect.Effect<Channel, NotFound>
    readonly rename: (
      scope: Access,
      id: string,
      name: string,
      actor: AuditActor
    ) => Effect.Effect<Channel, NotFound>
    readonly remove: (scope: Access, id: string, actor: AuditActor) => Effect.Effect<Channel, NotFound>
    readonly connect: (
      scope: Access,
      id: string,
      request: ConnectRequest,
      actor: AuditActor
    ) => Effect.Effect<Channel, NotFound | InvalidState>
    readonly logout: (
      scope: Access,
      id: string,
      actor: AuditActor
    ) => Effect.Effect<Channel, NotFound | InvalidState>
    readonly restart: (
      scope: Access,
      id: string,
      actor: AuditActor
    ) => Effect.Effect<Channel, NotFound | InvalidState>
    readonly qr: (
      scope: Access,
      id: string
    ) => Effect.Effect<{ readonly qr: string; readonly expires_at: string }, NotFound | InvalidState>
  }
>()("whatisup/Channels") {}

export const layerChannels = Layer.effect(
  Channels,
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const audit = yield* Audit
    const events = yield* EventLog
    const keyRing = yield* KeyRing
    const authStates = yield* AuthStates

    const inTransaction = <A, E>(effect: Effect.Effect<A, E>) =>
      sql.withTransaction(effect).pipe(Effect.catchTag("SqlError", Effect.die)) as Effect.Effect<
        A,
        Exclude<E, { readonly _tag: "SqlError" }>
      >

    const scoped = (scope: Access) =>
      scope.onlyChannel === null ? sql`` : sql`AND id = ${scope.onlyChannel}`

    /** The channel, locked for the transaction; deleted channels are gone for their customer. */
    const lock = (scope: Access, id: string) =>
      Effect.flatMap(
        sql<ChannelRow>`
          SELECT * FROM channels
          WHERE id = ${id} AND customer_id = ${scope.customerId} AND status <> 'deleted' ${scoped(scope)}
          FOR UPDATE`,
        (rows) => (rows[0] === undefined ? Effect.fail(notFound()) : Effect.succeed(rows[0]))
      )

    const wake = (id: string) => sql`SELECT pg_notify(${channelsChangedChannel}, ${id})`

    /** Decrypts the pairing code, shown only while pairing by code. */
    const render = (row: ChannelRow) =>
      row.status === "pairing" && row.pairing_code_ciphertext !== null
        ? Effect.map(keyRing.decrypt(row.pairing_code_ciphertext).pipe(Effect.orDie), (code) =>
            renderChannel(row, code)
          )
        : Effect.succeed(renderChannel(row))

    /** Pairing by code: the actor, wherever it runs, asks WhatsApp for the code; wait a little for it. */
    const awaitPairingCode = (id: string, epoch: number) =>
      Effect.gen(function* () {
        for (let attempt = 0; attempt < 100; attempt++) {
          const rows = yield* sql<ChannelRow>`SELECT * FROM channels WHERE id = ${id}`.pipe(Effect.orDie)
          const row = rows[0]
          if (row === undefined || row.run_epoch !== epoch || row.status !== "pairing") return null
          if (row.pairing_code_ciphertext !== null)
            return yield* keyRing.decrypt(row.pairing_code_ciphertext).pipe(Effect.orDie)
          yield* Effect.sleep("100 millis")
        }
        return null
      })

    /** Stops the channel for good (logout, delete): its actor unlinks the device, its login is forgotten. */
    const unlink = (id: string, status: "logged_out" | "deleted", reason: string) =>
      Effect.gen(function* () {
        const rows = yield* sql<ChannelRow>`
          UPDATE channels SET status = ${status}, status_reason = ${reason}, desired = 'stopped',
            run_epoch = run_epoch + 1, unlink_epoch = run_epoch + 1,
            qr_ciphertext = NULL, qr_expires_at = NULL, pairing_code_ciphertext = NULL, updated_at = now()
          WHERE id = ${id} RETURNING *`
        yield* authStates.wipe(id)
        return rows[0]!
      })

    const refuse = (row: ChannelRow, action: string) =>
      new InvalidState({
        detail: `A channel that is ${row.status} cannot ${action}`,
        current_status: row.status
      })

    return Channels.of({
      create: (scope, { name, actor }) =>
        inTransaction(
          Effect.gen(function* () {
            const customers = yield* sql<{ max_channels: number }>`
              SELECT max_channels FROM customers WHERE id = ${scope.customerId} FOR UPDATE`
            const max = customers[0]?.max_channels ?? 0
            const counted = yield* sql<{ n: number }>`
              SELECT count(*)::int AS n FROM channels WHERE customer_id = ${scope.customerId} AND status <> 'deleted'`
            if ((counted[0]?.n ?? 0) >= max) {
              return yield* new PlanLimitReached({
                detail: `The plan allows ${max} channels`,
                limit: "max_channels",
                max
              })
            }
            const id = newId("channel")
            const rows = yield* sql<ChannelRow>`
              INSERT INTO channels (id, customer_id, name) VALUES (${id}, ${scope.customerId}, ${name}) RETURNING *`
            yield* audit.record({
              customerId: scope.customerId,
              actor,
              action: "channel.created",
              resourceType: "channel",
              resourceId: id,
              data: { name }
            })
            return renderChannel(rows[0]!)
          })
        ),

      list: (scope, { limit = defaultPageSize, cursor }) =>
        Effect.gen(function* () {
          const after = yield* decodeCursor(cursor, "ch")
          const rows = yield* sql<ChannelRow>`
            SELECT * FROM channels
            WHERE customer_id = ${scope.customerId} AND status <> 'deleted' ${scoped(scope)}
              ${after === null ? sql`` : sql`AND id < ${after}`}
            ORDER BY id DESC LIMIT ${limit + 1}`.pipe(Effect.orDie)
          const page = toPage(rows, limit, (row) => row)
          return { data: yield* Effect.forEach(page.data, render), next_cursor: page.next_cursor }
        }),

      get: (scope, id) =>
        Effect.flatMap(
          sql<ChannelRow>`
            SELECT * FROM channels
            WHERE id = ${id} AND customer_id = ${scope.customerId} AND status <> 'deleted' ${scoped(scope)}`.pipe(
            Effect.orDie
          ),
          (rows) => (rows[0] === undefined ? Effect.fail(notFound()) : render(rows[0]))
        ),

      rename: (scope, id, name, actor) =>
        inTransaction(
          Effect.gen(function* () {
            yield* lock(scope, id)
            const rows = yield* sql<ChannelRow>`
              UPDATE channels SET name = ${name}, updated_at = now() WHERE id = ${id} RETURNING *`
            yield* audit.record({
              customerId: scope.customerId,
              actor,
              action: "channel.updated",
              resourceType: "channel",
              resourceId: id,
              data: { name }
            })
            return renderChannel(rows[0]!)
          })
        ),

      remove: (scope, id, actor) =>
        inTransaction(
          Effect.gen(function* () {
            const before = yield* lock(scope, id)
            const row = yield* unlink(id, "deleted", "channel_deleted")
            yield* audit.record({
              customerId: scope.customerId,
              actor,
              action: "channel.deleted",
              resourceType: "channel",
              resourceId: id,
              data: { previous_status: before.status }
            })
            yield* wake(id)
            return renderChannel(row)
          })
        ),

      connect: (scope, id, request, actor) =>
        inTransaction(
          Effect.gen(function* () {
            const before = yield* lock(scope, id)
            if (!connectableStatuses.includes(before.status)) return yield* refuse(before, "connect")
            const rows = yield* sql<ChannelRow>`
              UPDATE channels SET status = 'pairing', status_reason = NULL, desired = 'running',
                run_epoch = run_epoch + 1, connect_method = ${request.method},
                pairing_phone_number = ${request.method === "pairing_code" ? request.phone_number : null},
                qr_ciphertext = NULL, qr_expires_at = NULL, pairing_code_ciphertext = NULL, updated_at = now()
              WHERE id = ${id} RETURNING *`
            yield* audit.record({
              customerId: scope.customerId,
              actor,
              action: "channel.connect_requested",
              resourceType: "channel",
              resourceId: id,
              data: { method: request.method, previous_status: before.status }
            })
            yield* wake(id)
            return rows[0]!
          })
        ).pipe(
          Effect.flatMap((row) =>
            request.method === "pairing_code"
              ? Effect.map(awaitPairingCode(id, row.run_epoch), (code) => renderChannel(row, code))
              : Effect.succeed(renderChannel(row))
          )
        ),

      logout: (scope, id, actor) =>
        inTransaction(
          Effect.gen(function* () {
            const before = yield* lock(scope, id)
            if (!isRunning(before.status) || !canMove(before.status, "logged_out")) {
              return yield* refuse(before, "log out")
            }
            const row = yield* unlink(id, "logged_out", "logout_requested")
            yield* events.append({
              customerId: scope.customerId,
              channelId: id,
              type: "channel.logged_out",
              data: { reason: "logout_requested" }
            })
            yield* audit.record({
              customerId: scope.customerId,
              actor,
              action: "channel.logged_out",
              resourceType: "channel",
              resourceId: id,
              data: { previous_status: before.status }
            })
            yield* wake(id)
            return renderChannel(row)
          })
        ),

      restart: (scope, id, actor) =>
        inTransaction(
          Effect.gen(function* () {
            const before = yield* lock(scope, id)
            if (!runningStatuses.includes(before.status)) return yield* refuse(before, "restart")
            const rows = yield* sql<ChannelRow>`
              UPDATE channels SET run_epoch = run_epoch + 1, updated_at = now() WHERE id = ${id} RETURNING *`
            yield* audit.record({
              customerId: scope.customerId,
              actor,
              action: "channel.restart_requested",
              resourceType: "channel",
              resourceId: id,
              data: { status: before.status }
            })
            yield* wake(id)
            return renderChannel(rows[0]!)
          })
        ),

      qr: (scope, id) =>
        Effect.gen(function* () {
          const rows = yield* sql<ChannelRow & { qr_expired: boolean | null }>`
            SELECT *, qr_expires_at <= now() AS qr_expired FROM channels
            WHERE id = ${id} AND customer_id = ${scope.customerId} AND status <> 'deleted' ${scoped(scope)}`.pipe(
            Effect.orDie
          )
          const row = rows[0]
          if (row === undefined) return yield* notFound()
          if (row.status !== "pairing") {
            return yield* new InvalidState({
              detail: `The channel is ${row.status}, not pairing: connect it with {"method":"qr"} first`,
              current_status: row.status
            })
          }
          if (row.qr_ciphertext === null || row.qr_expires_at === null || row.qr_expired !== false) {
            return yield* new InvalidState({
              detail: "No QR code yet: the channel is still connecting to WhatsApp; retry in a moment",
              current_status: row.status
            })
          }
          const qr = yield* keyRing.decrypt(row.qr_ciphertext).pipe(Effect.orDie)
          return { qr, expires_at: row.qr_expires_at.toISOString() }
        })
    })
  })
)
