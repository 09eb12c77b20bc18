import { Effect } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import pg from "pg"
import { newId } from "../../server/src/db/ids.ts"
import { outboundWhatsAppId } from "../../server/src/messages/whatsappIds.ts"

/**
 * The baselines of the sends benchmark: the accept path as small as `node:http` and `pg` make it,
 * without schema, framework or effect. Each checks the bearer key by comparison, reads the JSON body,
 * and answers 202 with the queued message once it is stored; the messages go to tables of the
 * gateway's shape, on a database of their own.
 */

export interface Row {
  readonly id: string
  readonly customer_id: string
  readonly channel_id: string
  readonly chat: string
  readonly type: string
  readonly content: unknown
  readonly whatsapp_id: string
}

export interface Sender {
  readonly customerId: string
  readonly key: string
}

/** How a server stores a send's row: `undefined` stores nothing (the no-database ceiling). */
type Store = ((row: Row) => Promise<void>) | undefined

const pathPattern = /^\/v1\/channels\/([^/]+)\/messages$/

const serve = (sender: Sender, store: Store) => {
  const authorization = `Bearer ${sender.key}`
  return http.createServer({ keepAliveTimeout: 60_000 }, (request, response) => {
    const channelId = pathPattern.exec(request.url ?? "")?.[1]
    let body = ""
    request.setEncoding("utf8").on("data", (chunk: string) => (body += chunk))
    request.on("end", () => {
      const answer = (status: number, value: unknown) => {
        const text = JSON.stringify(value)
        response.writeHead(status, {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(text)
        })
        response.end(text)
      }
      if (request.method !== "POST" || channelId === undefined) return answer(404, { code: "not_found" })
      if (request.headers.authorization !== authorization) return answer(401, { code: "unauthorized" })
      let message: { to: string; type: string } & Record<string, unknown>
      try {
        message = JSON.parse(body)
      } catch {
        return answer(400, { code: "invalid_request" })
      }
      const id = newId.message()
      const row: Row = {
        id,
        customer_id: sender.customerId,
        channel_id: channelId,
        chat: message.to,
        type: message.type,
        content: message[message.type],
        whatsapp_id: outboundWhatsAppId(id)
      }
      const accepted = () => {
        const now = new Date().toISOString()
        answer(202, {
          id,
          channel_id: channelId,
          direction: "outbound",
          from: null,
          to: row.chat,
          type: row.type,
          [row.type]: row.content,
          context: null,
          whatsapp_id: row.whatsapp_id,
          status: "queued",
          failure: null,
          created_at: now,
          updated_at: now
        })
      }
      if (store === undefined) return accepted()
      store(row).then(accepted, () => answer(500, { code: "internal_error" }))
    })
  })
}

const insertMessage = `
  INSERT INTO messages (id, customer_id, channel_id, direction, chat, type, content, whatsapp_id, status)
  VALUES ($1, $2, $3, 'outbound', $4, $5, $6, $7, 'queued')`

/** (a) One transaction per send: the message and its first status, committed before the answer. */
const transactionPerSend =
  (pool: pg.Pool): Store =>
  async (row) => {
    const client = await pool.connect()
    try {
      await client.query("BEGIN")
      await client.query({
        name: "insert-message",
        text: insertMessage,
        values: [
          row.id,
          row.customer_id,
          row.channel_id,
          row.chat,
          row.type,
          JSON.stringify(row.content),
          row.whatsapp_id
        ]
      })
      await client.query({
        name: "insert-status",
        text: "INSERT INTO message_statuses (message_id, status) VALUES ($1, 'queued')",
        values: [row.id]
      })
      await client.query("COMMIT")
      client.release()
    } catch (error) {
      client.release(error as Error)
      throw error
    }
  }

const insertBatch = `
  WITH r AS (
    SELECT * FROM json_to_recordset($1::json) AS r(id text, customer_id text, channel_id text, chat text,
      type text, content jsonb, whatsapp_id text)
  ), m AS (
    INSERT INTO messages (id, customer_id, channel_id, direction, chat, type, content, whatsapp_id, status)
    SELECT id, customer_id, channel_id, 'outbound', chat, type, content, whatsapp_id, 'queued' FROM r
    RETURNING id
  )
  INSERT INTO message_statuses (message_id, status) SELECT id, 'queued' FROM m`

/**
 * (b) Write-combined: the sends waiting are taken together, up to `maxBatch`, into one transaction of
 * multi-row inserts, at most `writers` transactions at once (while one commits, the next gathers);
 * each send is answered after its batch committed.
 */
const writeCombined = (
  pool: pg.Pool,
  { maxBatch, writers }: { maxBatch: number; writers: number }
): Store => {
  const waiting: Array<{ row: Row; resolve: () => void; reject: (error: unknown) => void }> = []
  let writing = 0
  const write = async () => {
    writing++
    try {
      while (waiting.length > 0) {
        const batch = waiting.splice(0, maxBatch)
        const client = await pool.connect()
        try {
          await client.query("BEGIN")
          await client.query({
            name: "insert-batch",
            text: insertBatch,
            values: [JSON.stringify(batch.map((send) => send.row))]
          })
          await client.query("COMMIT")
          client.release()
          for (const send of batch) send.resolve()
        } catch (error) {
          client.release(error as Error)
          for (const send of batch) send.reject(error)
        }
      }
    } finally {
      writing--
    }
  }
  return (row) =>
    new Promise<void>((resolve, reject) => {
      waiting.push({ row, resolve, reject })
      if (writing < writers) void write()
    })
}

/** Where a minimal server stores its sends, and how; none, it answers without storing (the bare `node:http` ceiling). */
export type Storage =
  | { readonly kind: "transaction_per_send"; readonly url: string; readonly connections: number }
  | {
      readonly kind: "write_combined"
      readonly url: string
      readonly connections: number
      readonly maxBatch: number
      readonly writers: number
    }

/** A minimal server on 127.0.0.1 until the scope closes, storing as `storage` says with a pool of its own. */
export const minimalServer = (sender: Sender, storage?: Storage) =>
  Effect.gen(function* () {
    const store =
      storage === undefined
        ? undefined
        : yield* Effect.map(
            Effect.acquireRelease(
              Effect.sync(() => new pg.Pool({ connectionString: storage.url, max: storage.connections })),
              (pool) => Effect.promise(() => pool.end())
            ),
            (pool) =>
              storage.kind === "transaction_per_send"
                ? transactionPerSend(pool)
                : writeCombined(pool, storage)
          )
    const server = yield* Effect.acquireRelease(
      Effect.callback<http.Server>((resume) => {
        const server = serve(sender, store)
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.callback<void>((resume) => {
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    )
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
