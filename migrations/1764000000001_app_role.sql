-- Up Migration

-- Least privilege: the service's login role(s) get DML on the service's tables through the
-- NOLOGIN group role orders_app, and nothing else; only the schema owner that runs
-- `orders migrate` (MIGRATE_DATABASE_URL) may CREATE, ALTER or DROP. The operator makes the app's
-- login role a member once, e.g.  CREATE ROLE orders_service LOGIN PASSWORD '…' IN ROLE orders_app;
-- (deploy/compose/initdb.sql does this for docker compose; docs/deploy.md for Kubernetes).
--
-- Roles are cluster-wide and several databases (parallel test databases, several environments)
-- may run this at once: creating the role tolerates it existing already, or being created
-- concurrently (unique_violation on pg_authid). A migration role without CREATEROLE is told what
-- to do instead. Nothing here needs a superuser.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'orders_app') THEN
    BEGIN
      CREATE ROLE orders_app NOLOGIN;
    EXCEPTION
      WHEN duplicate_object OR unique_violation THEN
        NULL;
      WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'role orders_app does not exist and % may not create roles', current_user
          USING HINT = 'Create it once as an administrator: CREATE ROLE orders_app NOLOGIN; then run orders migrate up again.';
    END;
  END IF;
END
$$;

-- Grants in whichever schema the migrations create their tables (the first on search_path).
DO $$
DECLARE
  s text := current_schema();
BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO orders_app', s);
  EXECUTE format(
    'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %1$I.orders, %1$I.order_items, %1$I.outbox_events, '
    '%1$I.notifications, %1$I.idempotency_keys TO orders_app', s);
  -- /readyz compares the applied migrations with the shipped ones.
  IF to_regclass(format('%I.pgmigrations', s)) IS NOT NULL THEN
    EXECUTE format('GRANT SELECT ON TABLE %I.pgmigrations TO orders_app', s);
  END IF;
  -- Tables and sequences that later migrations create (as this same owner role) get the same DML.
  EXECUTE format(
    'ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO orders_app', s);
  EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO orders_app', s);
END
$$;

-- Down Migration

-- The role itself stays: it is cluster-wide and other databases may still use it.
DO $$
DECLARE
  s text := current_schema();
BEGIN
  IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'orders_app') THEN
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE USAGE, SELECT ON SEQUENCES FROM orders_app', s);
    EXECUTE format(
      'ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM orders_app', s);
    IF to_regclass(format('%I.pgmigrations', s)) IS NOT NULL THEN
      EXECUTE format('REVOKE ALL ON TABLE %I.pgmigrations FROM orders_app', s);
    END IF;
    EXECUTE format(
      'REVOKE ALL ON TABLE %1$I.orders, %1$I.order_items, %1$I.outbox_events, %1$I.notifications, '
      '%1$I.idempotency_keys FROM orders_app', s);
    EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM orders_app', s);
  END IF;
END
$$;
