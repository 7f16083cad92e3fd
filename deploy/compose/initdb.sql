-- Database roles for docker compose. The postgres image runs this once, when its volume is first
-- initialised (/docker-entrypoint-initdb.d), as the superuser, in POSTGRES_DB.
-- LOCAL DEVELOPMENT ONLY: the passwords are fixed and published. Elsewhere create the same roles
-- with generated passwords kept in a secret store (docs/deploy.md).
--
--   orders_owner    LOGIN  owns the database and its schema: `orders migrate` (MIGRATE_DATABASE_URL)
--   orders_app      group  exactly the DML the service's statements use, granted by the
--                          migrations (1764000000001, 1764000000003); no DDL, no TRUNCATE
--   orders_service  LOGIN  member of orders_app: `orders serve` and `orders worker` (DATABASE_URL)
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'orders_owner') THEN
    CREATE ROLE orders_owner LOGIN PASSWORD 'orders_owner';
  END IF;
  -- Created here too (the migration tolerates that), so that the membership can be granted now.
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'orders_app') THEN
    CREATE ROLE orders_app NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'orders_service') THEN
    CREATE ROLE orders_service LOGIN PASSWORD 'orders_service';
  END IF;
  GRANT orders_app TO orders_service;

  -- The owner role owns the database; from PostgreSQL 15 on, that makes it the owner of the
  -- public schema (pg_database_owner) and the only non-superuser that may create objects there.
  EXECUTE format('ALTER DATABASE %I OWNER TO orders_owner', current_database());
  EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO orders_app', current_database());
  -- PostgreSQL 14 and older let PUBLIC create in the public schema: not here.
  REVOKE CREATE ON SCHEMA public FROM PUBLIC;
END
$$;
