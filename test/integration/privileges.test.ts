/**
 * The database privilege table: what the app's login role may do, that everything else is
 * refused, and that what it may do is enough for every statement the app runs.
 *
 * Against a real server the deployment of docs/deploy.md is rebuilt: a schema owner with no
 * superuser and no CREATEROLE owns a fresh database and runs the migrations; the app logs in as
 * its own role, a member of orders_app, created after the migrations (as a rotated or
 * secrets-manager-issued credential would be). On the embedded PGlite, the same migrations run
 * and leave the same grants in the catalog.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  claimEvents,
  completeEvents,
  failEvents,
  outboxStats,
  releaseEvents,
} from '../../src/messaging/outbox.js';
import { listOutboxEvents, retryDeadEvents } from '../../src/messaging/outbox-admin.js';
import { createOrdersService } from '../../src/orders/service.js';
import { createDb, type Db, type Queryable } from '../../src/platform/db.js';
import { startEmbeddedPostgres } from '../../src/platform/embedded.js';
import { isSchemaCurrent, migrate, shippedMigrations } from '../../src/platform/migrations.js';
import { disabledTelemetry } from '../../src/platform/telemetry.js';
import { createHousekeeper } from '../../src/worker/housekeeping.js';
import { adminQuery, NEEDS_SERVER, serverUrl, testLogger, withDatabase } from '../helpers/db.js';
import { createFastTestWorker, waitForEventStatus } from '../helpers/worker.js';

/**
 * What orders_app holds, per table: table-wide privileges, and UPDATE by column where the app
 * only ever updates some columns. Keep it equal to the migrations' grants; a table or column the
 * app starts writing belongs here, with its grant in the migration that creates it.
 */
const PRIVILEGE_TABLE: Record<string, { table: string[]; update?: string[] }> = {
  orders: {
    table: ['INSERT', 'SELECT'],
    update: ['cancellation_reason', 'payment', 'status', 'stock', 'updated_at', 'version'],
  },
  order_items: { table: ['INSERT', 'SELECT'] },
  outbox_events: {
    table: ['DELETE', 'INSERT', 'SELECT'],
    update: ['attempts', 'available_at', 'last_error', 'locked_by', 'locked_until', 'processed_at', 'status'],
  },
  notifications: { table: ['DELETE', 'INSERT', 'SELECT'] },
  idempotency_keys: {
    table: ['DELETE', 'INSERT', 'SELECT'],
    update: ['created_at', 'expires_at', 'fingerprint', 'response_body', 'response_headers', 'status_code'],
  },
  pgmigrations: { table: ['SELECT'] },
  inbox_messages: {
    table: ['DELETE', 'INSERT', 'SELECT'],
    update: ['order_id', 'processed_at', 'reason', 'status', 'type'],
  },
};

/** The session defaults every login role but the migrating one gets in the service's database. */
const APP_SESSION_DEFAULTS = { statement_timeout: '30s', idle_in_transaction_session_timeout: '15s' };

/** orders_app's grants in the current schema, read from the ACLs, in PRIVILEGE_TABLE's shape. */
async function grantedToApp(db: Queryable) {
  const tables = await db.query<{ relname: string; privileges: string[] }>(`
    SELECT c.relname, array_agg(a.privilege_type::text ORDER BY a.privilege_type) AS privileges
    FROM pg_class c, aclexplode(c.relacl) a
    WHERE c.relnamespace = current_schema()::regnamespace AND a.grantee = 'orders_app'::regrole
    GROUP BY c.relname`);
  const columns = await db.query<{ relname: string; privilege: string; columns: string[] }>(`
    SELECT c.relname, a.privilege_type AS privilege, array_agg(att.attname::text ORDER BY att.attname) AS columns
    FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid, aclexplode(att.attacl) a
    WHERE c.relnamespace = current_schema()::regnamespace AND a.grantee = 'orders_app'::regrole
    GROUP BY c.relname, a.privilege_type`);
  const granted: Record<string, { table: string[]; update?: string[] }> = {};
  for (const t of tables.rows) granted[t.relname] = { table: t.privileges };
  for (const c of columns.rows) {
    const entry = granted[c.relname] ?? { table: [] };
    granted[c.relname] = entry;
    // Column grants under the privilege's name: `update` is expected, anything else shows up.
    Object.assign(entry, { [c.privilege.toLowerCase()]: c.columns });
  }
  return granted;
}

/** Default privileges that would hand orders_app tables or sequences created later. */
async function defaultGrantsToApp(db: Queryable): Promise<string[]> {
  const r = await db.query<{ acl: string }>(`
    SELECT d.defaclobjtype::text || ':' || a.privilege_type AS acl
    FROM pg_default_acl d, aclexplode(d.defaclacl) a
    WHERE a.grantee = 'orders_app'::regrole`);
  return r.rows.map((row) => row.acl);
}

const order = {
  customerId: 'c-privileges',
  currency: 'EUR',
  items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 1999 }],
};

describe.skipIf(!serverUrl())(`as the app's login role on a real server (${NEEDS_SERVER})`, () => {
  const suffix = randomBytes(5).toString('hex');
  const owner = { role: `orders_test_owner_${suffix}`, password: randomBytes(12).toString('hex') };
  const app = { role: `orders_test_app_${suffix}`, password: randomBytes(12).toString('hex') };
  const database = `orders_test_priv_${suffix}`;
  const admin = serverUrl() ?? '';
  const urlAs = (who: { role: string; password: string }) => {
    const u = new URL(withDatabase(admin, database));
    u.username = who.role;
    u.password = who.password;
    return u.toString();
  };
  let ownerClient: pg.Client;
  let appClient: pg.Client;
  let appDb: Db;

  beforeAll(async () => {
    // What an administrator does once (deploy/compose/initdb.sql, docs/deploy.md). orders_app is
    // cluster-wide and other test databases may be creating it at this moment.
    await adminQuery(
      admin,
      `DO $$ BEGIN
         CREATE ROLE orders_app NOLOGIN;
       EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
       END $$`,
    );
    await adminQuery(admin, `CREATE ROLE ${owner.role} LOGIN PASSWORD '${owner.password}'`);
    await adminQuery(admin, `CREATE DATABASE ${database} OWNER ${owner.role}`);
    await adminQuery(admin, `REVOKE ALL ON DATABASE ${database} FROM PUBLIC`);
    await adminQuery(admin, `GRANT CONNECT ON DATABASE ${database} TO orders_app`);

    await migrate({ databaseUrl: urlAs(owner), direction: 'up', logger: testLogger });
    await adminQuery(admin, `CREATE ROLE ${app.role} LOGIN PASSWORD '${app.password}' IN ROLE orders_app`);

    ownerClient = new pg.Client({ connectionString: urlAs(owner) });
    appClient = new pg.Client({ connectionString: urlAs(app) });
    await Promise.all([ownerClient.connect(), appClient.connect()]);
    appDb = createDb({ connectionString: urlAs(app), max: 4, logger: testLogger });
  });

  afterAll(async () => {
    await Promise.allSettled([ownerClient?.end(), appClient?.end(), appDb?.close()]);
    await adminQuery(admin, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await adminQuery(admin, `DROP ROLE IF EXISTS ${app.role}`);
    await adminQuery(admin, `DROP ROLE IF EXISTS ${owner.role}`);
  });

  it('the app role gets statement and idle-in-transaction timeouts; the migrating owner keeps none', async () => {
    const show = async (client: pg.Client) => {
      const r = await client.query<{ st: string; idle: string }>(
        `SELECT current_setting('statement_timeout') AS st,
                current_setting('idle_in_transaction_session_timeout') AS idle`,
      );
      return {
        statement_timeout: r.rows[0]?.st,
        idle_in_transaction_session_timeout: r.rows[0]?.idle,
      };
    };
    expect(await show(appClient)).toEqual(APP_SESSION_DEFAULTS);
    expect(await show(ownerClient)).toEqual({
      statement_timeout: '0',
      idle_in_transaction_session_timeout: '0',
    });
  });

  it('holds exactly the privilege table, and nothing by default on tables created later', async () => {
    expect(await grantedToApp(ownerClient)).toEqual(PRIVILEGE_TABLE);
    expect(await defaultGrantsToApp(ownerClient)).toEqual([]);
  });

  it('is refused (42501) everything outside the table: updates and deletes it does not use, DDL, TRUNCATE', async () => {
    // A table the owner creates after the migrations, as a later migration would.
    await ownerClient.query('CREATE TABLE IF NOT EXISTS created_later (id int PRIMARY KEY)');
    const refused = [
      'UPDATE orders SET total = total',
      'UPDATE orders SET customer_id = customer_id',
      'UPDATE inbox_messages SET body = body',
      'UPDATE inbox_messages SET id = id',
      'DELETE FROM orders',
      'UPDATE order_items SET quantity = quantity',
      'DELETE FROM order_items',
      'UPDATE notifications SET channel = channel',
      'UPDATE outbox_events SET payload = payload',
      'UPDATE outbox_events SET aggregate_id = aggregate_id',
      'UPDATE idempotency_keys SET key = key',
      `INSERT INTO pgmigrations (name, run_on) VALUES ('x', now())`,
      'DELETE FROM pgmigrations',
      ...Object.keys(PRIVILEGE_TABLE).map((t) => `TRUNCATE ${t}`),
      'CREATE TABLE sneaky (id int)',
      'CREATE INDEX ON orders (currency)',
      'ALTER TABLE orders ADD COLUMN note text',
      'DROP TABLE notifications',
      'CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$',
      'SELECT * FROM created_later',
      'INSERT INTO created_later VALUES (1)',
    ];
    const outcomes: Record<string, string> = {};
    for (const sql of refused) {
      outcomes[sql] = await appClient.query(sql).then(
        () => 'allowed',
        (error: { code?: string }) => error.code ?? 'no code',
      );
    }
    expect(outcomes).toEqual(Object.fromEntries(refused.map((sql) => [sql, '42501'])));
  });

  it('is enough for every statement the API, the worker, housekeeping, readiness and `orders events` run', async () => {
    const orders = createOrdersService({ db: appDb, idempotencyTtlHours: 24 });
    const everyone = { customerId: null };

    // The API: create (with and without a key, and over an expired key), replay, read.
    const plain = await orders.create({ input: order, customerId: order.customerId });
    const keyed = { key: 'k-fresh', fingerprint: 'f-1' };
    const first = await orders.create({ input: order, customerId: order.customerId, idempotency: keyed });
    expect(first.kind).toBe('created');
    expect(
      (await orders.create({ input: order, customerId: order.customerId, idempotency: keyed })).kind,
    ).toBe('replayed');
    await ownerClient.query(
      `INSERT INTO idempotency_keys (key, fingerprint, status_code, response_headers, response_body, expires_at)
       VALUES ('k-expired', 'old', 201, '{}', '{}', now() - interval '1 hour')`,
    );
    const reused = await orders.create({
      input: order,
      customerId: order.customerId,
      idempotency: { key: 'k-expired', fingerprint: 'f-2' },
    });
    expect(reused.kind).toBe('created');
    if (plain.kind !== 'created') throw new Error('expected a new order');
    expect((await orders.get(plain.order.id, everyone)).id).toBe(plain.order.id);
    expect(JSON.parse((await orders.getRepresentation(plain.order.id, everyone)).body).id).toBe(
      plain.order.id,
    );
    expect(await orders.listEvents(plain.order.id, everyone)).toHaveLength(1);
    // The worker's statements: claim, complete with a notification, fail (retry), release,
    // fail (dead), then the operator's list and retry, and the gauges.
    const workerId = 'w-privileges';
    const claimed = (await claimEvents(appDb, { workerId, limit: 10, leaseMs: 60_000 })).events;
    expect(claimed).toHaveLength(3);
    const [done, retried, released] = claimed as [
      (typeof claimed)[0],
      (typeof claimed)[0],
      (typeof claimed)[0],
    ];
    const completed = await completeEvents(appDb, workerId, [
      {
        ...done,
        notification: { orderId: done.aggregateId, customerId: order.customerId, channel: 'email' },
      },
    ]);
    expect(completed).toMatchObject([{ id: done.id, notified: true }]);
    expect(
      await failEvents(appDb, workerId, [{ ...retried, dead: false, delayMs: 0, error: 'e' }]),
    ).toHaveLength(1);
    expect(await releaseEvents(appDb, workerId, [released])).toBe(1);
    const again = (await claimEvents(appDb, { workerId, limit: 10, leaseMs: 60_000 })).events;
    expect(again).toHaveLength(2);
    await failEvents(
      appDb,
      workerId,
      again.map((e) => ({ ...e, dead: true, delayMs: 0, error: 'gave up' })),
    );
    expect(await listOutboxEvents(appDb, { status: 'dead', limit: 10 })).toHaveLength(2);
    expect((await retryDeadEvents(appDb, { ids: [again[0]?.id ?? ''] })).retried).toHaveLength(1);
    expect((await retryDeadEvents(appDb, { allDead: true })).retried).toHaveLength(1);
    expect(await outboxStats(appDb)).toMatchObject({ pending: 2, dead: 0 });

    // Housekeeping: processed events with their notifications, expired keys.
    await ownerClient.query(`UPDATE idempotency_keys SET expires_at = now() - interval '1 second'`);
    const housekeeper = createHousekeeper({
      db: appDb,
      logger: testLogger,
      retentionMs: 0,
      batchSize: 100,
      intervalMs: 0,
    });
    expect(await housekeeper.runOnce()).toEqual({ events: 1, inbox: 0, idempotencyKeys: 2 });

    // The lifecycle: a command (lock, update, outbox insert) and a page of the list.
    const cancelled = await orders.command({ kind: 'cancel', orderId: plain.order.id, visibleTo: everyone });
    expect(cancelled.order).toMatchObject({ status: 'cancelled', version: 2 });
    const page = await orders.list({
      customerId: order.customerId,
      status: undefined,
      limit: 2,
      after: undefined,
    });
    expect(page.orders).toHaveLength(2);

    // Readiness.
    expect(await isSchemaCurrent(appDb)).toBe(true);

    // And the real worker, end to end, on the same role.
    const worker = createFastTestWorker(appDb, disabledTelemetry());
    await worker.start();
    try {
      const next = await orders.create({ input: order, customerId: order.customerId });
      if (next.kind !== 'created') throw new Error('expected a new order');
      await waitForEventStatus(appDb, next.eventId, 'processed', 5_000);
      const r = await appDb.query<{ status: string }>('SELECT status FROM outbox_events WHERE id = $1', [
        next.eventId,
      ]);
      expect(r.rows[0]?.status).toBe('processed');
    } finally {
      await worker.stop({ timeoutMs: 1_000 });
    }
  });
});

describe('on the embedded PGlite (the development database runs the same migrations)', () => {
  it('the migrations apply, leave the same privilege table and session defaults, and go down and up again', async () => {
    const embedded = await startEmbeddedPostgres({});
    const db = createDb({ connectionString: embedded.url, max: 1, logger: testLogger });
    try {
      await migrate({ databaseUrl: embedded.url, direction: 'up', logger: testLogger });
      expect(await grantedToApp(db)).toEqual(PRIVILEGE_TABLE);
      expect(await defaultGrantsToApp(db)).toEqual([]);
      // PGlite is one session, opened before the migrations ran: read the defaults from the catalog.
      const settings = await db.query<{ role: string | null; setting: string }>(`
        SELECT r.rolname AS role, unnest(s.setconfig) AS setting
        FROM pg_db_role_setting s
        JOIN pg_database d ON d.oid = s.setdatabase AND d.datname = current_database()
        LEFT JOIN pg_roles r ON r.oid = s.setrole
        ORDER BY 1 NULLS FIRST, 2`);
      expect(settings.rows).toEqual([
        { role: null, setting: 'idle_in_transaction_session_timeout=15s' },
        { role: null, setting: 'statement_timeout=30s' },
        { role: 'postgres', setting: 'idle_in_transaction_session_timeout=0' },
        { role: 'postgres', setting: 'statement_timeout=0' },
      ]);

      // Down to just before the least-privilege migration (and whatever came after it).
      const shipped = shippedMigrations();
      const count = shipped.length - shipped.indexOf('1764000000003_app_role_least_privilege');
      await migrate({ databaseUrl: embedded.url, direction: 'down', count, logger: testLogger });
      expect((await grantedToApp(db)).orders?.table).toEqual(['DELETE', 'INSERT', 'SELECT', 'UPDATE']);
      await migrate({ databaseUrl: embedded.url, direction: 'up', logger: testLogger });
      expect(await grantedToApp(db)).toEqual(PRIVILEGE_TABLE);
    } finally {
      await db.close();
      await embedded.stop();
    }
  });
});
