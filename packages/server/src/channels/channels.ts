import {
  type AdminChannel,
  AdminChannel as AdminChannelSchema,
  type AuditActor,
  type Channel,
  type ChannelId,
  type ChannelStatus,
  type ConnectRequest,
  type CustomerId
} from "@whatisup/domain"
import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient, type Statement } from "effect/sql"
import { Audit } from "../audit/audit.ts"
import { KeyRing } from "../crypto/keyRing.ts"
import { newId } from "../db/ids.ts"
import { type InvalidCursor, listPage, type Page, type PageRequest } from "../db/pagination.ts"
import { decodeRows, transaction } from "../db/transaction.ts"
import type { PlanLimitExceeded } from "../tenancy/errors.ts"
import { checkPlanLimit } from "../tenancy/planLimits.ts"
import { ChannelNotFound, ChannelStateConflict, QrUnavailable } from "./errors.ts"
import { EventLog } from "../events/eventLog.ts"
import { AuthStates } from "./loginStore.ts"
import {
  channelColumns,
  ChannelRow,
  channelsChangedChannel,
  pairingCodeColumn,
  pairingCodePlace,
  qrColumn,
  qrPlace,
  renderChannel
} from "./rows.ts"
import { canMove, connectableStatuses, isRunning } from "./status.ts"

/** Whose channel: a customer, and for a channel-bound key the one channel it may see. */
export interface Access {
  readonly customerId: CustomerId
  readonly onlyChannel: ChannelId | null
}

const QrRow = Schema.Struct({ ...ChannelRow.fields, qr_expired: Schema.NullOr(Schema.Boolean) })

const OperatorChannelRow = Schema.Struct({
  ...AdminChannelSchema.fields,
  lease_expires_at: Schema.NullOr(Schema.Date)
})

/** The customer-facing side of channels: what should run, and everything the API may change. */
export class Channels extends Context.Service<
  Channels,
  {
    readonly create: (
      access: Access,
      options: { readonly name: string | null; readonly actor: AuditActor }
    ) => Effect.Effect<Channel, PlanLimitExceeded>
    readonly list: (access: Access, page: PageRequest) => Effect.Effect<Page<Channel>, InvalidCursor>
    readonly get: (access: Access, id: ChannelId) => Effect.Effect<Channel, ChannelNotFound>
    readonly rename: (
      access: Access,
      id: ChannelId,
      name: string,
      actor: AuditActor
    ) => Effect.Effect<Channel, ChannelNotFound>
    readonly remove: (
      access: Access,
      id: ChannelId,
      actor: AuditActor
    ) => Effect.Effect<Channel, ChannelNotFound>
    readonly connect: (
      access: Access,
      id: ChannelId,
      request: ConnectRequest,
      actor: AuditActor
    ) => Effect.Effect<Channel, ChannelNotFound | ChannelStateConflict>
    readonly logout: (
      access: Access,
      id: ChannelId,
      actor: AuditActor
    ) => Effect.Effect<Channel, ChannelNotFound | ChannelStateConflict>
    readonly restart: (
      access: Access,
      id: ChannelId,
      actor: AuditActor
    ) => Effect.Effect<Channel, ChannelNotFound | ChannelStateConflict>
    readonly qr: (
      access: Access,
      id: ChannelId
    ) => Effect.Effect<{ readonly qr: string; readonly expires_at: string }, ChannelNotFound | QrUnavailable>
    /** Every channel for the operator, with the node holding it. */
    readonly listForOperator: (filter: {
      readonly node?: string | undefined
      readonly status?: ChannelStatus | undefined
      readonly customerId?: CustomerId | undefined
    }) => Effect.Effect<ReadonlyArray<AdminChannel>>
  }
>()("whatisup/Channels") {}

export const layerChannels = Layer.effect(
  Channels,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* Audit
    const events = yield* EventLog
    const keyRing = yield* KeyRing
    const authStates = yield* AuthStates
    const columns = sql.literal(channelColumns)
    const inTransaction = transaction(sql)

    yield* keyRing.register(qrColumn)
    yield* keyRing.register(pairingCodeColumn)

    /** The channels the caller may see: its customer's, not deleted, and only the bound one for a bound key. */
    const visible = (access: Access) =>
      sql`customer_id = ${access.customerId} AND status <> 'deleted'
        ${access.onlyChannel === null ? sql`` : sql`AND id = ${access.onlyChannel}`}`

    const found = (access: Access, id: ChannelId, lock: Statement.Fragment) =>
      Effect.flatMap(
        sql`SELECT ${columns} FROM channels WHERE id = ${id} AND ${visible(access)} ${lock}`.pipe(
          decodeRows(ChannelRow)
        ),
        (rows) =>
          rows[0] === undefined
            ? Effect.fail(new ChannelNotFound({ channelId: id }))
            : Effect.succeed(rows[0])
      )

    const update = (id: ChannelId, set: Statement.Fragment) =>
      Effect.map(
        sql`UPDATE channels SET ${set}, updated_at = now() WHERE id = ${id} RETURNING ${columns}`.pipe(
          decodeRows(ChannelRow)
        ),
        (rows) => rows[0]!
      )

    /** Decrypts the pairing code, shown only while pairing by code. */
    const render = (row: ChannelRow) =>
      row.status === "pairing" && row.pairing_code_ciphertext !== null
        ? Effect.map(
            keyRing.decrypt(row.pairing_code_ciphertext, pairingCodePlace(row.id)).pipe(Effect.orDie),
            (code) => renderChannel(row, code)
          )
        : Effect.succeed(renderChannel(row))

    /**
     * A change the caller asked for: the channel locked, changed, audited in one transaction, and
     * the supervisors woken when what should run changed.
     */
    const change = <E>(
      access: Access,
      id: ChannelId,
      actor: AuditActor,
      action: string,
      apply: (
        before: ChannelRow
      ) => Effect.Effect<{ readonly row: ChannelRow; readonly audit: Record<string, unknown> }, E>,
      options: { readonly wake: boolean } = { wake: true }
    ) =>
      inTransaction(
        Effect.gen(function* () {
          const before = yield* found(access, id, sql`FOR UPDATE`)
          const { row, audit: data } = yield* apply(before)
          yield* audit.record({
            customerId: access.customerId,
            actor,
            action,
            resourceType: "channel",
            resourceId: id,
            data
          })
          if (options.wake) yield* sql`SELECT pg_notify(${channelsChangedChannel}, ${id})`
          return row
        })
      )

    const refuse = (row: ChannelRow, action: ChannelStateConflict["action"]) =>
      new ChannelStateConflict({ channelId: row.id, status: row.status, action })

    /** Stops the channel for good (logout, delete): its actor unlinks the device, its login is forgotten. */
    const unlink = (id: ChannelId, status: "logged_out" | "deleted", reason: string) =>
      Effect.gen(function* () {
        const row = yield* update(
          id,
          sql`status = ${status}, status_reason = ${reason}, desired = 'stopped',
            run_epoch = run_epoch + 1, unlink_epoch = run_epoch + 1,
            qr_ciphertext = NULL, qr_expires_at = NULL, pairing_code_ciphertext = NULL`
        )
        yield* authStates.wipe(id)
        return row
      })

    /** Pairing by code: the actor, wherever it runs, asks WhatsApp for the code; wait a little for it. */
    const awaitPairingCode = (id: ChannelId, epoch: number) =>
      Effect.gen(function* () {
        for (let attempt = 0; attempt < 100; attempt++) {
          const rows = yield* sql`SELECT ${columns} FROM channels WHERE id = ${id}`.pipe(
            decodeRows(ChannelRow)
          )
          const row = rows[0]
          if (row === undefined || row.run_epoch !== epoch || row.status !== "pairing") return null
          if (row.pairing_code_ciphertext !== null)
            return yield* keyRing
              .decrypt(row.pairing_code_ciphertext, pairingCodePlace(row.id))
              .pipe(Effect.orDie)
          yield* Effect.sleep("100 millis")
        }
        return null
      })

    return Channels.of({
      create: Effect.fn("Channels.create")(function* (access, { name, actor }) {
        return yield* inTransaction(
          Effect.gen(function* () {
            yield* checkPlanLimit(
              sql,
              access.customerId,
              "max_channels",
              sql`SELECT count(*)::int AS n FROM channels WHERE customer_id = ${access.customerId} AND status <> 'deleted'`
            ).pipe(Effect.catchTag("CustomerNotFound", Effect.die))
            const id = newId.channel()
            const rows = yield* sql`
              INSERT INTO channels (id, customer_id, name) VALUES (${id}, ${access.customerId}, ${name})
              RETURNING ${columns}`.pipe(decodeRows(ChannelRow))
            yield* audit.record({
              customerId: access.customerId,
              actor,
              action: "channel.created",
              resourceType: "channel",
              resourceId: id,
              data: { name }
            })
            return renderChannel(rows[0]!)
          })
        )
      }),

      list: Effect.fn("Channels.list")(function* (access, page) {
        const rows = yield* listPage(sql, page, "ch", (window) =>
          sql`SELECT ${columns} FROM channels WHERE ${visible(access)} ${window}`.pipe(decodeRows(ChannelRow))
        )
        return { data: yield* Effect.forEach(rows.data, render), next_cursor: rows.next_cursor }
      }),

      get: Effect.fn("Channels.get")(function* (access, id) {
        return yield* render(yield* found(access, id, sql``))
      }),

      rename: Effect.fn("Channels.rename")(function* (access, id, name, actor) {
        const row = yield* change(
          access,
          id,
          actor,
          "channel.updated",
          () => Effect.map(update(id, sql`name = ${name}`), (row) => ({ row, audit: { name } })),
          { wake: false }
        )
        return renderChannel(row)
      }),

      remove: Effect.fn("Channels.remove")(function* (access, id, actor) {
        const row = yield* change(access, id, actor, "channel.deleted", (before) =>
          Effect.map(unlink(id, "deleted", "channel_deleted"), (row) => ({
            row,
            audit: { previous_status: before.status }
          }))
        )
        return renderChannel(row)
      }),

      connect: Effect.fn("Channels.connect")(function* (access, id, request, actor) {
        const row = yield* change(access, id, actor, "channel.connect_requested", (before) =>
          connectableStatuses.includes(before.status)
            ? Effect.map(
                update(
                  id,
                  sql`status = 'pairing', status_reason = NULL, desired = 'running',
                    run_epoch = run_epoch + 1, connect_method = ${request.method},
                    pairing_phone_number = ${request.method === "pairing_code" ? request.phone_number : null},
                    qr_ciphertext = NULL, qr_expires_at = NULL, pairing_code_ciphertext = NULL`
                ),
                (row) => ({ row, audit: { method: request.method, previous_status: before.status } })
              )
            : Effect.fail(refuse(before, "connect"))
        )
        return request.method === "pairing_code"
          ? renderChannel(row, yield* awaitPairingCode(id, row.run_epoch))
          : renderChannel(row)
      }),

      logout: Effect.fn("Channels.logout")(function* (access, id, actor) {
        const row = yield* change(access, id, actor, "channel.logged_out", (before) =>
          isRunning(before.status) && canMove(before.status, "logged_out")
            ? Effect.gen(function* () {
                const row = yield* unlink(id, "logged_out", "logout_requested")
                yield* events.append({
                  customerId: access.customerId,
                  channelId: id,
                  type: "channel.logged_out",
                  data: { reason: "logout_requested" }
                })
                return { row, audit: { previous_status: before.status } }
              })
            : Effect.fail(refuse(before, "log out"))
        )
        return renderChannel(row)
      }),

      restart: Effect.fn("Channels.restart")(function* (access, id, actor) {
        const row = yield* change(access, id, actor, "channel.restart_requested", (before) =>
          isRunning(before.status)
            ? Effect.map(update(id, sql`run_epoch = run_epoch + 1`), (row) => ({
                row,
                audit: { status: before.status }
              }))
            : Effect.fail(refuse(before, "restart"))
        )
        return renderChannel(row)
      }),

      qr: Effect.fn("Channels.qr")(function* (access, id) {
        const rows = yield* sql`
          SELECT ${columns}, qr_expires_at <= now() AS qr_expired FROM channels
          WHERE id = ${id} AND ${visible(access)}`.pipe(decodeRows(QrRow))
        const row = rows[0]
        if (row === undefined) return yield* new ChannelNotFound({ channelId: id })
        if (row.status !== "pairing") {
          const reason = isRunning(row.status) ? "linked" : "not_pairing"
          return yield* new QrUnavailable({
            channelId: id,
            status: row.status,
            reason,
            statusReason: row.status_reason
          })
        }
        if (row.connect_method === "pairing_code") {
          return yield* new QrUnavailable({
            channelId: id,
            status: row.status,
            reason: "pairing_by_code",
            statusReason: row.status_reason
          })
        }
        if (row.qr_ciphertext === null || row.qr_expires_at === null || row.qr_expired !== false) {
          return yield* new QrUnavailable({
            channelId: id,
            status: row.status,
            reason: "not_yet",
            statusReason: row.status_reason
          })
        }
        const qr = yield* keyRing.decrypt(row.qr_ciphertext, qrPlace(id)).pipe(Effect.orDie)
        return { qr, expires_at: row.qr_expires_at.toISOString() }
      }),

      listForOperator: Effect.fn("Channels.listForOperator")(function* ({ node, status, customerId }) {
        const rows = yield* sql`
          SELECT c.id, c.customer_id, c.name, c.status, c.status_reason, c.phone_number,
            n.node_id AS node, n.expires_at AS lease_expires_at
          FROM channels c LEFT JOIN channel_leases l ON l.channel_id = c.id
            LEFT JOIN gateway_nodes n ON n.node_id = l.owner AND n.expires_at > now()
          WHERE true
            ${node === undefined ? sql`` : sql`AND n.node_id = ${node}`}
            ${status === undefined ? sql`AND c.status <> 'deleted'` : sql`AND c.status = ${status}`}
            ${customerId === undefined ? sql`` : sql`AND c.customer_id = ${customerId}`}
          ORDER BY c.id`.pipe(decodeRows(OperatorChannelRow))
        return rows.map((row) => ({ ...row, lease_expires_at: row.lease_expires_at?.toISOString() ?? null }))
      })
    })
  })
)
