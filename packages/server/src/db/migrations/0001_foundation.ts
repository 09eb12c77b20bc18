import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE customers (
      id text PRIMARY KEY,
      name text NOT NULL,
      status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
      max_channels integer NOT NULL,
      max_api_keys integer NOT NULL,
      messages_per_minute integer NOT NULL,
      api_requests_per_second integer NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`
  yield* sql`
    CREATE TABLE api_keys (
      id text PRIMARY KEY,
      customer_id text NOT NULL REFERENCES customers (id),
      name text,
      key_hash bytea NOT NULL UNIQUE,
      prefix text NOT NULL,
      last_four text NOT NULL,
      channel_id text,
      created_at timestamptz NOT NULL DEFAULT now(),
      last_used_at timestamptz,
      revoked_at timestamptz
    )`
  yield* sql`CREATE INDEX api_keys_by_customer ON api_keys (customer_id, id DESC)`
  yield* sql`
    CREATE TABLE audit_events (
      id text PRIMARY KEY,
      customer_id text,
      actor_type text NOT NULL CHECK (actor_type IN ('api_key', 'operator', 'system')),
      actor_id text,
      action text NOT NULL,
      resource_type text NOT NULL,
      resource_id text NOT NULL,
      request_id text,
      data jsonb NOT NULL DEFAULT '{}'::jsonb,
      created_at timestamptz NOT NULL DEFAULT now()
    )`
  yield* sql`CREATE INDEX audit_events_by_customer ON audit_events (customer_id, id DESC)`
  yield* sql`
    CREATE INDEX audit_events_by_resource
    ON audit_events (customer_id, resource_type, resource_id, id DESC)`
  yield* sql`
    CREATE FUNCTION audit_events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END
    $$`
  yield* sql`
    CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_are_append_only()`
  yield* sql`
    CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_are_append_only()`
  yield* sql`
    CREATE TABLE idempotency_keys (
      customer_id text NOT NULL,
      key text NOT NULL,
      request_hash text NOT NULL,
      response_ciphertext text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (customer_id, key)
    )`
  yield* sql`CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at)`
  yield* sql`
    CREATE TABLE key_ring_canary (
      id integer PRIMARY KEY CHECK (id = 1),
      ciphertext text NOT NULL
    )`
})
