-- Up Migration

-- Orders and their lines. Money is an integer in the currency's minor unit; the checks mirror
-- the API's validation so that no path (a script, a future endpoint) can store what the API rejects.
CREATE TABLE orders (
  id uuid PRIMARY KEY,
  customer_id text NOT NULL CHECK (char_length(customer_id) BETWEEN 1 AND 64),
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'confirmed', 'cancelled')),
  currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  total bigint NOT NULL CHECK (total BETWEEN 0 AND 9007199254740991),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer_id_created_at_idx ON orders (customer_id, created_at DESC);

CREATE TABLE order_items (
  order_id uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  line_no smallint NOT NULL CHECK (line_no BETWEEN 0 AND 99),
  sku text NOT NULL CHECK (char_length(sku) BETWEEN 1 AND 64),
  quantity integer NOT NULL CHECK (quantity BETWEEN 1 AND 10000),
  unit_price bigint NOT NULL CHECK (unit_price BETWEEN 0 AND 1000000000000),
  PRIMARY KEY (order_id, line_no)
);

-- The transactional outbox. The first columns follow Debezium's outbox event router
-- (id, aggregatetype, aggregateid, type, payload) so CDC could replace the poller later.
CREATE TABLE outbox_events (
  id uuid PRIMARY KEY,
  aggregate_type text NOT NULL,
  aggregate_id uuid NOT NULL,
  type text NOT NULL,
  payload jsonb NOT NULL,
  -- W3C trace context of the request that wrote the event, so the worker continues its trace.
  trace_context jsonb,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processing', 'processed', 'dead')),
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  available_at timestamptz NOT NULL DEFAULT now(),
  locked_by text,
  locked_until timestamptz,
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  processed_at timestamptz
);
CREATE INDEX outbox_events_aggregate_idx ON outbox_events (aggregate_id, created_at);
-- Claims read only these two small partial indexes, however large the processed history grows.
CREATE INDEX outbox_events_pending_idx ON outbox_events (available_at) WHERE status = 'pending';
CREATE INDEX outbox_events_lease_idx ON outbox_events (locked_until) WHERE status = 'processing';
CREATE INDEX outbox_events_processed_idx ON outbox_events (processed_at) WHERE status = 'processed';

-- One row per notification actually sent: the event id as key makes the consumer idempotent.
CREATE TABLE notifications (
  event_id uuid PRIMARY KEY,
  order_id uuid NOT NULL,
  customer_id text NOT NULL,
  channel text NOT NULL,
  sent_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_sent_at_idx ON notifications (sent_at);

-- Idempotency-Key records, written in the same transaction as the order they produced.
-- `scope` is the caller identity once authentication exists ('' until then).
CREATE TABLE idempotency_keys (
  scope text NOT NULL DEFAULT '',
  key text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
  fingerprint text NOT NULL,
  status_code smallint NOT NULL,
  response_headers jsonb NOT NULL,
  response_body text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);

-- Down Migration
DROP TABLE idempotency_keys;
DROP TABLE notifications;
DROP TABLE outbox_events;
DROP TABLE order_items;
DROP TABLE orders;
