import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // the outbox and the inbox: an outbound row is queued until its channel's actor sends it
  yield* sql`
    CREATE TABLE messages (
      id text PRIMARY KEY,
      customer_id text NOT NULL,
      channel_id text NOT NULL REFERENCES channels (id),
      direction text NOT NULL CHECK (direction IN ('outbound', 'inbound')),
      chat text NOT NULL,
      type text NOT NULL,
      content jsonb NOT NULL,
      context_message_id text,
      context_whatsapp_id text,
      whatsapp_id text NOT NULL,
      status text NOT NULL CHECK (status IN
        ('queued', 'sent', 'delivered', 'read', 'played', 'failed', 'received')),
      failure_reason text,
      failure_detail text,
      wa_content bytea,
      claim_generation bigint,
      claim_token bigint,
      read_receipt text CHECK (read_receipt IN ('pending', 'sent')),
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (channel_id, whatsapp_id)
    ) WITH (fillfactor = 80)`
  yield* sql`CREATE INDEX messages_outbox ON messages (channel_id, id) WHERE status = 'queued'`
  yield* sql`CREATE INDEX messages_read_receipts ON messages (channel_id, id) WHERE read_receipt = 'pending'`
  yield* sql`CREATE INDEX messages_by_channel ON messages (channel_id, id DESC)`
  yield* sql`CREATE INDEX messages_queued_since ON messages (created_at) WHERE status = 'queued'`
  yield* sql`
    CREATE TABLE message_statuses (
      message_id text NOT NULL REFERENCES messages (id),
      status text NOT NULL,
      reason text,
      at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (message_id, status)
    )`
})
