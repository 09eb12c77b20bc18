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
import { Context, Effect, Layer, Schedule, Schema } from "effect"
import { SqlClient, type Statement } from "effect/sql"
import { Audit } from "../audit/audit.ts"
import { KeyRing } from "../crypto/keyRing.ts"
import { newId } from "../db/ids.ts"
import { type InvalidCursor, listPage, type Page, type PageRequest } from "../db/pagination.ts"
import { decodeRows, transaction } from "../db/transaction.ts"
import { revokeKeysBoundTo } from "../tenancy/apiKeys.ts"
import { Authentication } from "../tenancy/authentication.ts"
import { keyChanged } from "../tenancy/credentials.ts"
import { AuthenticationFailed, type PlanLimitExceeded } from "../tenancy/errors.ts"
import { checkPlanLimit } from "../tenancy/planLimits.ts"
import { type ChannelOperationPaced, ChannelNotFound, ChannelStateConflict, QrUnavailable } from "./errors.ts"
import { EventLog } from "../events/eventLog.ts"
import { removeChannelEndpoints } from "../webhooks/endpoints.ts"
import { AuthStates } from "./loginStore.ts"
import { ChannelMessaging } from "./messaging.ts"
import { makePacing, type PacedOperation } from "./pacing.ts"
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
import { canMove, connectableStatuses, isRunning, runningStatuses } from "./status.ts"

/**
 * A restart opens a new connection: while the channel still pairs by code, that connection asks
 * WhatsApp for a new code, which pushes a new "link a device" prompt to the number.
 */
const restartOperations = (before: ChannelRow): ReadonlyArray<PacedOperation> =>
  before.status === "pairing" && before.connect_method === "pairing_code"
    ? ["restart", "pairing_code"]
    : ["restart"]

/** Whose channel: a customer, and for a channel-bound key the one channel it may see. */
export interface Access {
  readonly customerId: CustomerId
  readonly onlyChannel: ChannelId | null
}

const QrRow = Schema.Struct({ ...ChannelRow.fields, qr_expired: Schema.NullOr(Schema.Boolean) })

const CustomerPlanRow = Schema.Struct({
  status: Schema.String,
  max_channels: Schema.Number,
  pairing_codes_per_channel_per_hour: Schema.Number,
  pairing_codes_per_customer_per_day: Schema.Number
})

type CustomerPlanRow = typeof CustomerPlanRow.Type

const StoppedRow = Schema.Struct({
  id: ChannelRow.fields.id,
  previous_status: ChannelRow.fields.status,
  status: ChannelRow.fields.status
})

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
    ) => Effect.Effect<Channel, PlanLimitExceeded | ChannelOperationPaced>
    readonly list: (access: Access, page: PageRequest) => Effect.Effect<Page<Channel>, InvalidCursor>
    readonly get: (access: Access, id: ChannelId) => Effect.Effect<Channel, ChannelNotFound>
    readonly rename: (
      access: Access,
      id: ChannelId,
      name: string,
      actor: AuditActor
    ) => Effect.Effect<Channel, ChannelNotFound | AuthenticationFailed>
    /** Deletes the channel for good; the keys bound to it are revoked with it. */
    readonly remove: (
      access: Access,
      id: ChannelId,
      actor: AuditActor
    ) => Effect.Effect<Channel, ChannelNotFound | ChannelOperationPaced | AuthenticationFailed>
    readonly connect: (
      access: Access,
      id: ChannelId,
      request: ConnectRequest,
      actor: AuditActor
    ) => Effect.Effect<
      Channel,
      ChannelNotFound | ChannelStateConflict | ChannelOperationPaced | AuthenticationFailed
    >
    readonly logout: (
      access: Access,
      id: ChannelId,
      actor: AuditActor
    ) => Effect.Effect<
      Channel,
      ChannelNotFound | ChannelStateConflict | ChannelOperationPaced | AuthenticationFailed
    >
    readonly restart: (
      access: Access,
      id: ChannelId,
      actor: AuditActor
    ) => Effect.Effect<
      Channel,
      ChannelNotFound | ChannelStateConflict | ChannelOperationPaced | AuthenticationFailed
    >
    readonly qr: (
      access: Access,
      id: ChannelId
    ) => Effect.Effect<{ readonly qr: string; readonly expires_at: string }, ChannelNotFound | QrUnavailable>
    /**
     * In the transaction suspending the customer: its channels stop. A connected (or connecting)
     * channel becomes `suspended` and connects again on resume; one still pairing rests as `created`.
     */
    readonly suspendCustomer: (customerId: CustomerId, actor: AuditActor) => Effect.Effect<void>
    /** In the transaction resuming the customer: its suspended channels connect again. */
    readonly resumeCustomer: (customerId: CustomerId, actor: AuditActor) => Effect.Effect<void>
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
    const messaging = yield* ChannelMessaging
    const authentication = yield* Authentication
    const columns = sql.literal(channelColumns)
    const inTransaction = transaction(sql)
    const pacing = makePacing(sql)

    yield* Effect.forkScoped(
      Effect.repeat(
        pacing.prune.pipe(
          Effect.catchCause((cause) => Effect.logWarning("could not prune paced channel operations", cause))
        ),
        Schedule.spaced("1 hour")
      )
    )

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
     * The customer's row, locked before any of its channels (always in this order): shared, or
     * exclusive where the customer's own pacing is counted.
     */
    const lockCustomer = (access: Access, exclusive: boolean) =>
      Effect.map(
        sql`
          SELECT status, max_channels, pairing_codes_per_channel_per_hour, pairing_codes_per_customer_per_day
          FROM customers WHERE id = ${access.customerId}
          ${exclusive ? sql`FOR NO KEY UPDATE` : sql`FOR SHARE`}`.pipe(decodeRows(CustomerPlanRow)),
        (rows) => rows[0]!
      )

    type Applied = { readonly row: ChannelRow; readonly audit: Record<string, unknown> }

    /**
     * A change the caller asked for: the channel locked, changed, audited in one transaction, and
     * the supervisors woken when what should run changed. `countsForCustomer`: the change is paced
     * per customer, so the customer row is locked exclusively (every paced change is).
     */
    const change = <E>(
      access: Access,
      id: ChannelId,
      actor: AuditActor,
      action: string,
      apply: (before: ChannelRow, customer: CustomerPlanRow) => Effect.Effect<Applied, E>,
      options: { readonly wake?: boolean; readonly countsForCustomer?: boolean } = {}
    ) =>
      inTransaction(
        Effect.gen(function* () {
          const { wake = true, countsForCustomer = false } = options
          const customer = yield* lockCustomer(access, countsForCustomer)
          // suspended while this request was on its way: refused as its next request will be
          if (customer.status === "suspended") return yield* new AuthenticationFailed({ reason: "suspended" })
          const before = yield* found(access, id, sql`FOR UPDATE`)
          const { row, audit: data } = yield* apply(before, customer)
          yield* audit.record({
            customerId: access.customerId,
            actor,
            action,
            resourceType: "channel",
            resourceId: id,
            data
          })
          if (wake) yield* sql`SELECT pg_notify(${channelsChangedChannel}, ${id})`
          return row
        })
      )

    /**
     * `apply` refused when its operations were asked for too often lately, and counted when done;
     * the operations may depend on the channel as it was.
     */
    const paced =
      <E>(
        access: Access,
        operationsOf: ReadonlyArray<PacedOperation> | ((before: ChannelRow) => ReadonlyArray<PacedOperation>),
        apply: (before: ChannelRow) => Effect.Effect<Applied, E>
      ) =>
      (before: ChannelRow, customer: CustomerPlanRow) =>
        Effect.gen(function* () {
          const operations = typeof operationsOf === "function" ? operationsOf(before) : operationsOf
          yield* pacing.admit(access.customerId, before.id, operations, customer)
          const applied = yield* apply(before)
          yield* pacing.note(access.customerId, before.id, operations)
          return applied
        })

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
        yield* messaging.channelGone(id, status === "deleted" ? "channel_deleted" : "channel_logged_out")
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
            // the customer is locked above: its creates are counted one after the other
            yield* pacing.admit(access.customerId, null, ["create"], yield* lockCustomer(access, true))
            const id = newId.channel()
            const rows = yield* sql`
              INSERT INTO channels (id, customer_id, name) VALUES (${id}, ${access.customerId}, ${name})
              RETURNING ${columns}`.pipe(decodeRows(ChannelRow))
            yield* pacing.note(access.customerId, id, ["create"])
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
        let revokedKeys: ReadonlyArray<string> = []
        const row = yield* change(
          access,
          id,
          actor,
          "channel.deleted",
          paced(access, ["delete"], (before) =>
            Effect.gen(function* () {
              const row = yield* unlink(id, "deleted", "channel_deleted")
              const revoked = yield* revokeKeysBoundTo(sql, audit.record, {
                customerId: access.customerId,
                channelId: id,
                actor
              })
              revokedKeys = revoked
              yield* removeChannelEndpoints(sql, audit, id, actor)
              return { row, audit: { previous_status: before.status, revoked_api_keys: revoked } }
            })
          ),
          { countsForCustomer: true }
        )
        // the bound keys fail at once here; other processes hear it from the commit's NOTIFY
        for (const keyId of revokedKeys) yield* authentication.forget(keyChanged(keyId))
        return renderChannel(row)
      }),

      connect: Effect.fn("Channels.connect")(function* (access, id, request, actor) {
        const phoneNumber = request.method === "pairing_code" ? (request.phone_number ?? null) : null
        const operations: ReadonlyArray<PacedOperation> =
          phoneNumber === null ? ["connect"] : ["connect", "pairing_code"]
        const row = yield* change(
          access,
          id,
          actor,
          "channel.connect_requested",
          paced(access, operations, (before) =>
            connectableStatuses.includes(before.status)
              ? Effect.map(
                  update(
                    id,
                    sql`status = 'pairing', status_reason = NULL, desired = 'running',
                      run_epoch = run_epoch + 1, connect_method = ${request.method},
                      pairing_phone_number = ${phoneNumber},
                      qr_ciphertext = NULL, qr_expires_at = NULL, pairing_code_ciphertext = NULL`
                  ),
                  (row) => ({
                    row,
                    // the number WhatsApp pushes a link prompt to
                    audit: {
                      method: request.method,
                      ...(phoneNumber === null ? {} : { phone_number: phoneNumber }),
                      previous_status: before.status
                    }
                  })
                )
              : Effect.fail(refuse(before, "connect"))
          ),
          { countsForCustomer: true }
        )
        return request.method === "pairing_code"
          ? renderChannel(row, yield* awaitPairingCode(id, row.run_epoch))
          : renderChannel(row)
      }),

      logout: Effect.fn("Channels.logout")(function* (access, id, actor) {
        const row = yield* change(
          access,
          id,
          actor,
          "channel.logged_out",
          paced(access, ["logout"], (before) =>
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
          ),
          { countsForCustomer: true }
        )
        return renderChannel(row)
      }),

      restart: Effect.fn("Channels.restart")(function* (access, id, actor) {
        const row = yield* change(
          access,
          id,
          actor,
          "channel.restart_requested",
          paced(access, restartOperations, (before) =>
            isRunning(before.status)
              ? Effect.map(update(id, sql`run_epoch = run_epoch + 1`), (row) => ({
                  row,
                  audit: { status: before.status }
                }))
              : Effect.fail(refuse(before, "restart"))
          ),
          { countsForCustomer: true }
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

      suspendCustomer: Effect.fn("Channels.suspendCustomer")(function* (customerId, actor) {
        yield* inTransaction(
          Effect.gen(function* () {
            const stopped = yield* sql`
              WITH before AS (
                -- in id order, as every writer that locks several channels takes them (sends, inbound)
                SELECT id, status FROM channels
                WHERE customer_id = ${customerId} AND status IN ${sql.in(runningStatuses)}
                ORDER BY id FOR UPDATE
              )
              UPDATE channels c SET
                status = CASE WHEN before.status = 'pairing' THEN 'created' ELSE 'suspended' END,
                status_reason = 'customer_suspended', desired = 'stopped',
                qr_ciphertext = NULL, qr_expires_at = NULL, pairing_code_ciphertext = NULL, updated_at = now()
              FROM before WHERE c.id = before.id
              RETURNING c.id, before.status AS previous_status, c.status`.pipe(decodeRows(StoppedRow))
            for (const channel of stopped) {
              yield* events.append({
                customerId,
                channelId: channel.id,
                type: "channel.disconnected",
                data: { code: 0, reason: "customer_suspended" }
              })
              yield* audit.record({
                customerId,
                actor,
                action: "channel.suspended",
                resourceType: "channel",
                resourceId: channel.id,
                data: { previous_status: channel.previous_status, status: channel.status }
              })
              yield* sql`SELECT pg_notify(${channelsChangedChannel}, ${channel.id})`
            }
          })
        )
      }),

      resumeCustomer: Effect.fn("Channels.resumeCustomer")(function* (customerId, actor) {
        yield* inTransaction(
          Effect.gen(function* () {
            const resumed = yield* sql`
              WITH suspended AS (
                -- in id order, as every writer that locks several channels takes them (sends, inbound)
                SELECT id FROM channels WHERE customer_id = ${customerId} AND status = 'suspended'
                ORDER BY id FOR NO KEY UPDATE
              )
              UPDATE channels c SET status = 'connecting', status_reason = NULL, desired = 'running',
                run_epoch = c.run_epoch + 1, updated_at = now()
              FROM suspended WHERE c.id = suspended.id
              RETURNING c.id`.pipe(decodeRows(Schema.Struct({ id: ChannelRow.fields.id })))
            for (const channel of resumed) {
              yield* audit.record({
                customerId,
                actor,
                action: "channel.resumed",
                resourceType: "channel",
                resourceId: channel.id
              })
              yield* sql`SELECT pg_notify(${channelsChangedChannel}, ${channel.id})`
            }
          })
        )
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
