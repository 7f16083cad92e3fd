-- Up Migration

-- Least privilege, table by table. 1764000000001 gave orders_app SELECT, INSERT, UPDATE and
-- DELETE on every table, and the same on every table created later (default privileges). This
-- replaces that with what the app's statements use, and nothing by default:
--
--   orders, order_items  SELECT, INSERT
--       the API creates an order and reads it back; nothing updates or deletes one.
--   outbox_events        SELECT, INSERT, DELETE,
--                        UPDATE (status, attempts, available_at, locked_by, locked_until,
--                                last_error, processed_at)
--       the API inserts the event; the worker's claim, complete, fail and release and
--       `orders events retry` move its delivery state; housekeeping deletes processed events.
--   notifications        SELECT, INSERT, DELETE
--       complete records one (INSERT ... ON CONFLICT DO NOTHING); housekeeping deletes it with
--       its event.
--   idempotency_keys     SELECT, INSERT, DELETE,
--                        UPDATE (every column but scope and key)
--       the API stores and replays a response, and takes over an expired key
--       (ON CONFLICT DO UPDATE); housekeeping deletes expired keys.
--   pgmigrations         SELECT
--       /readyz compares the applied migrations with the shipped ones (granted by 1764000000001).
--
-- No TRUNCATE, REFERENCES or TRIGGER, no CREATE on the schema, no sequences (ids are uuids).
-- Updates are granted by column: not even a bug or an injected statement in the app can rewrite
-- what an event says (its payload, type or order) or whose an idempotency record is.
--
-- THE RULE FOR LATER MIGRATIONS: a migration that creates a table, or a column the app writes,
-- grants orders_app exactly what the app's statements on it need, in that same migration, next
-- to the DDL (UPDATE by column, e.g. `GRANT UPDATE (status, version) ON orders TO orders_app`).
-- Nothing reaches the app by default. test/integration/privileges.test.ts keeps the same table
-- and runs every statement of the app as a DML-only login role: a grant missing or too wide
-- fails it.
--
-- The REVOKE and the GRANTs commit together (the runner wraps the migrations in one
-- transaction), so a running app never sees a table without its grants.
REVOKE ALL ON TABLE orders, order_items, outbox_events, notifications, idempotency_keys FROM orders_app;

GRANT SELECT, INSERT ON TABLE orders, order_items TO orders_app;
GRANT SELECT, INSERT, DELETE ON TABLE outbox_events, notifications, idempotency_keys TO orders_app;
GRANT UPDATE (status, attempts, available_at, locked_by, locked_until, last_error, processed_at)
  ON TABLE outbox_events TO orders_app;
GRANT UPDATE (fingerprint, status_code, response_headers, response_body, created_at, expires_at)
  ON TABLE idempotency_keys TO orders_app;

-- Default privileges are per creating role: these are the ones 1764000000001 set, for the role
-- that runs the migrations.
DO $$
BEGIN
  EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON TABLES FROM orders_app', current_schema());
  EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON SEQUENCES FROM orders_app', current_schema());
END
$$;

-- Session defaults for the app's connections: a statement that runs 30 s, or a transaction left
-- open 15 s between statements (a client that hung or lost its connection mid-transaction, still
-- holding row locks), is ended by the server. The app's statements take milliseconds, are single
-- round trips, and the API gives up on a request after REQUEST_TIMEOUT_MS (10 s) anyway; these
-- are the server's backstop, for every session that does not choose its own (a psql session with
-- the app's credentials, a pool that was not configured).
--
-- They cannot be set on orders_app: PostgreSQL applies a role's settings only to the role a
-- session logs in as, never through membership, and the login roles are the operator's (made by
-- hand, by deploy/compose/initdb.sql, or per lease by a secrets manager). So they are set for
-- the database, where they reach every login role, while the role running the migrations keeps
-- no limit in this database (a CREATE INDEX on a large table may take minutes). A value an
-- operator has already set, for the database or for that role, is left as it is.
DO $$
DECLARE
  db oid := (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database());
  me oid := (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user);
  s record;
BEGIN
  FOR s IN SELECT * FROM (VALUES ('statement_timeout', '30s'), ('idle_in_transaction_session_timeout', '15s'))
      AS t (name, value) LOOP
    IF NOT EXISTS (
      SELECT FROM pg_catalog.pg_db_role_setting, unnest(setconfig) AS c
      WHERE setdatabase = db AND setrole = 0 AND c LIKE s.name || '=%'
    ) THEN
      BEGIN
        EXECUTE format('ALTER DATABASE %I SET %I = %L', current_database(), s.name, s.value);
      EXCEPTION
        WHEN insufficient_privilege THEN
          RAISE EXCEPTION '% may not set session defaults for database %: it does not own it',
            current_user, current_database()
            USING HINT = format(
              'Make the migration role the database owner, or have the owner run once: ALTER DATABASE %I SET %I = %L; then run orders migrate up again.',
              current_database(), s.name, s.value);
      END;
    END IF;
    -- Any role may set its own defaults; one it already has (here or everywhere) wins anyway.
    IF NOT EXISTS (
      SELECT FROM pg_catalog.pg_db_role_setting, unnest(setconfig) AS c
      WHERE setdatabase IN (db, 0) AND setrole = me AND c LIKE s.name || '=%'
    ) THEN
      EXECUTE format('ALTER ROLE CURRENT_USER IN DATABASE %I SET %I = 0', current_database(), s.name);
    END IF;
  END LOOP;
END
$$;

-- Down Migration

-- Back to 1764000000001's grants. The session defaults are reset only where they still hold the
-- values set above, so an operator's own choice survives.
DO $$
DECLARE
  db oid := (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database());
  me oid := (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user);
  s record;
BEGIN
  FOR s IN SELECT * FROM (VALUES ('statement_timeout', '30s'), ('idle_in_transaction_session_timeout', '15s'))
      AS t (name, value) LOOP
    IF EXISTS (
      SELECT FROM pg_catalog.pg_db_role_setting, unnest(setconfig) AS c
      WHERE setdatabase = db AND setrole = 0 AND c = s.name || '=' || s.value
    ) THEN
      EXECUTE format('ALTER DATABASE %I RESET %I', current_database(), s.name);
    END IF;
    IF EXISTS (
      SELECT FROM pg_catalog.pg_db_role_setting, unnest(setconfig) AS c
      WHERE setdatabase = db AND setrole = me AND c = s.name || '=0'
    ) THEN
      EXECUTE format('ALTER ROLE CURRENT_USER IN DATABASE %I RESET %I', current_database(), s.name);
    END IF;
  END LOOP;
  EXECUTE format(
    'ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO orders_app',
    current_schema());
  EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO orders_app', current_schema());
END
$$;

REVOKE ALL ON TABLE orders, order_items, outbox_events, notifications, idempotency_keys FROM orders_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE orders, order_items, outbox_events, notifications, idempotency_keys
  TO orders_app;
