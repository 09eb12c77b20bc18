import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE channels (
      id text PRIMARY KEY,
      customer_id text NOT NULL REFERENCES customers (id),
      name text,
      status text NOT NULL DEFAULT 'created' CHECK (status IN
        ('created', 'pairing', 'connecting', 'connected', 'reconnecting', 'logged_out', 'failed', 'deleted')),
      status_reason text,
      desired text NOT NULL DEFAULT 'stopped' CHECK (desired IN ('running', 'stopped')),
      connect_method text CHECK (connect_method IN ('qr', 'pairing_code')),
      pairing_phone_number text,
      phone_number text,
      qr_ciphertext text,
      qr_expires_at timestamptz,
      pairing_code_ciphertext text,
      last_connected_at timestamptz,
      event_seq bigint NOT NULL DEFAULT 0,
      run_epoch bigint NOT NULL DEFAULT 0,
      unlink_epoch bigint NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`
  yield* sql`CREATE INDEX channels_by_customer ON channels (customer_id, id DESC) WHERE status <> 'deleted'`
  yield* sql`CREATE INDEX channels_to_run ON channels (id) WHERE desired = 'running'`
  yield* sql`
    CREATE TABLE channel_leases (
      channel_id text PRIMARY KEY REFERENCES channels (id),
      owner text NOT NULL,
      generation bigint NOT NULL,
      expires_at timestamptz NOT NULL
    )`
  yield* sql`CREATE INDEX channel_leases_by_owner ON channel_leases (owner)`
  yield* sql`
    CREATE TABLE channel_auth_state (
      channel_id text NOT NULL REFERENCES channels (id),
      key_type text NOT NULL,
      key_id text NOT NULL,
      ciphertext text NOT NULL,
      PRIMARY KEY (channel_id, key_type, key_id)
    )`
  yield* sql`
    CREATE TABLE gateway_nodes (
      node_id text PRIMARY KEY,
      seen_at timestamptz NOT NULL
    )`
  yield* sql`
    CREATE TABLE events (
      id text PRIMARY KEY,
      customer_id text NOT NULL,
      channel_id text NOT NULL,
      seq bigint NOT NULL,
      type text NOT NULL,
      data jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (channel_id, seq)
    )`
  yield* sql`CREATE INDEX events_by_customer ON events (customer_id, id DESC)`
  yield* sql`CREATE INDEX events_by_channel ON events (customer_id, channel_id, id DESC)`
  yield* sql`
    ALTER TABLE api_keys ADD CONSTRAINT api_keys_channel FOREIGN KEY (channel_id) REFERENCES channels (id)`
})
