/**
 * KEDA's backlog query (src/k8s/keda.ts) on a real PostgreSQL: it returns the number of due
 * pending events exactly, stops counting at its cap, runs with the app role's privileges (KEDA
 * connects with the worker's DATABASE_URL), and reads only the partial index of pending events
 * however many processed events the table holds.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DUE_BACKLOG_QUERY, dueBacklogQuery } from '../../src/k8s/keda.js';
import { adminQuery, createTestDatabase, NEEDS_SERVER, serverUrl, type TestDatabase } from '../helpers/db.js';

const PROCESSED = 200_000;
const DUE = 7;
const LATER = 5;

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

describe.skipIf(!serverUrl())(`KEDA backlog query on a real server (${NEEDS_SERVER})`, () => {
  const role = {
    name: `orders_test_keda_${randomBytes(5).toString('hex')}`,
    password: randomBytes(12).toString('hex'),
  };
  let database: TestDatabase;
  let asApp: pg.Client;

  beforeAll(async () => {
    database = await createTestDatabase();
    // A processed history, a few due events, a few retried later, and the other statuses.
    await database.db.query(
      `INSERT INTO outbox_events (id, aggregate_type, aggregate_id, type, payload, status, created_at, available_at, processed_at)
       SELECT gen_random_uuid(), 'order', gen_random_uuid(), 'OrderCreated', '{}'::jsonb, 'processed',
              now() - interval '1 day', now() - interval '1 day', now() - interval '1 day' + i * interval '1 ms'
       FROM generate_series(1, $1) AS i`,
      [PROCESSED],
    );
    await database.db.query(
      `INSERT INTO outbox_events (id, aggregate_type, aggregate_id, type, payload, status, available_at)
       SELECT gen_random_uuid(), 'order', gen_random_uuid(), 'OrderCreated', '{}'::jsonb, 'pending', now() - i * interval '1 s'
       FROM generate_series(1, $1) AS i
       UNION ALL
       SELECT gen_random_uuid(), 'order', gen_random_uuid(), 'OrderCreated', '{}'::jsonb, 'pending', now() + i * interval '1 min'
       FROM generate_series(1, $2) AS i
       UNION ALL
       SELECT gen_random_uuid(), 'order', gen_random_uuid(), 'OrderCreated', '{}'::jsonb, s, now() - interval '1 min'
       FROM unnest(ARRAY['processing', 'dead']) AS s`,
      [DUE, LATER],
    );
    await database.db.query('ANALYZE outbox_events');
    // The worker's login role: a member of orders_app and nothing else, as in docs/deploy.md.
    const admin = serverUrl() ?? '';
    await adminQuery(admin, `CREATE ROLE ${role.name} LOGIN PASSWORD '${role.password}' IN ROLE orders_app`);
    const url = new URL(database.url);
    url.username = role.name;
    url.password = role.password;
    asApp = new pg.Client({ connectionString: url.toString() });
    await asApp.connect();
  });

  afterAll(async () => {
    await asApp?.end().catch(() => undefined);
    await database?.drop();
    await adminQuery(serverUrl() ?? '', `DROP ROLE IF EXISTS ${role.name}`).catch(() => undefined);
  });

  const count = async (query: string) => Number((await asApp.query<{ count: string }>(query)).rows[0]?.count);

  it('runs as the app role (a member of orders_app, no superuser) and counts exactly the due pending events', async () => {
    const who = await asApp.query<{ super: boolean; member: boolean }>(
      `SELECT rolsuper AS super, pg_has_role(current_user, 'orders_app', 'MEMBER') AS member
       FROM pg_roles WHERE rolname = current_user`,
    );
    expect(who.rows[0]).toEqual({ super: false, member: true });
    expect(await count(dueBacklogQuery(100, 10))).toBe(DUE);
  });

  it('stops counting at target × maxReplicas (beyond that the worker is at its maximum anyway)', async () => {
    expect(dueBacklogQuery(2, 3)).toBe(DUE_BACKLOG_QUERY.replace('{cap}', '6'));
    expect(await count(dueBacklogQuery(2, 3))).toBe(6);
    expect(await count(dueBacklogQuery(1, 1))).toBe(1);
    expect(await count(dueBacklogQuery(DUE, 1))).toBe(DUE);
  });

  it('reads only the partial index of pending events: no sequential scan of the processed history', async () => {
    const explain = await asApp.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(
      `EXPLAIN (FORMAT JSON) ${dueBacklogQuery(100, 10)}`,
    );
    const plan = nodes(explain.rows[0]!['QUERY PLAN'][0].Plan);
    const onOutbox = plan.filter((n) => n['Relation Name'] === 'outbox_events');
    expect(onOutbox.length).toBeGreaterThan(0);
    for (const node of onOutbox) {
      expect(node['Node Type']).toMatch(/^Index (Only )?Scan$/);
      expect(node['Index Name']).toBe('outbox_events_pending_idx');
    }
    expect(plan.some((n) => n['Node Type'] === 'Seq Scan')).toBe(false);
  });
});
