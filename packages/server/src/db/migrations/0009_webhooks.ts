import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE customers ADD COLUMN max_webhook_endpoints integer NOT NULL DEFAULT 10`
  // webhook.test and webhook.disabled belong to an endpoint, not to a channel's numbered events
  yield* sql`ALTER TABLE events ALTER COLUMN channel_id DROP NOT NULL, ALTER COLUMN seq DROP NOT NULL`
  yield* sql`
    CREATE TABLE webhook_endpoints (
      id text PRIMARY KEY,
      customer_id text NOT NULL REFERENCES customers (id),
      channel_id text REFERENCES channels (id),
      url text NOT NULL,
      description text,
      event_types text[] NOT NULL DEFAULT '{}',
      enabled boolean NOT NULL DEFAULT true,
      disabled_reason text CHECK (disabled_reason IN ('disabled_by_request', 'endpoint_gone', 'failing')),
      secret_ciphertext text,
      previous_secret_ciphertext text,
      previous_secret_expires_at timestamptz,
      failing_since timestamptz,
      deleted_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`
  yield* sql`
    CREATE INDEX webhook_endpoints_by_customer ON webhook_endpoints (customer_id, id DESC)
    WHERE deleted_at IS NULL`
  yield* sql`
    CREATE TABLE deliveries (
      id text PRIMARY KEY,
      customer_id text NOT NULL,
      endpoint_id text NOT NULL REFERENCES webhook_endpoints (id),
      event_id text NOT NULL REFERENCES events (id),
      event_type text NOT NULL,
      status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
      attempts integer NOT NULL DEFAULT 0,
      scheduled_attempts integer NOT NULL DEFAULT 0,
      next_attempt_at timestamptz,
      claimed_by text,
      last_attempt_at timestamptz,
      succeeded_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (endpoint_id, event_id)
    )`
  yield* sql`CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending'`
  yield* sql`CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, id DESC)`
  yield* sql`CREATE INDEX deliveries_by_customer ON deliveries (customer_id, status, id DESC)`
  yield* sql`CREATE INDEX deliveries_claimed ON deliveries (claimed_by) WHERE claimed_by IS NOT NULL`
  yield* sql`
    CREATE TABLE delivery_attempts (
      delivery_id text NOT NULL REFERENCES deliveries (id),
      attempt integer NOT NULL,
      node_id text NOT NULL,
      attempted_at timestamptz NOT NULL,
      duration_ms integer NOT NULL,
      status_code integer,
      error_type text,
      error_detail text,
      response_excerpt text,
      PRIMARY KEY (delivery_id, attempt)
    )`
})
