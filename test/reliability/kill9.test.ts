/**
 * `kill -9` during a POST load: after a restart, every order that was answered 201 exists with
 * exactly one OrderCreated event, and every event is processed with exactly one notification,
 * within 10 s of the restart (the killed worker's claims lapse after one short lease).
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { NEEDS_SERVER, serverUrl } from '../helpers/db.js';
import { runLoad, summary } from '../helpers/load.js';
import { createMigratedDatabase, orderRequest, startServe } from '../helpers/server.js';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe.skipIf(!serverUrl())(`kill -9 under load (${serverUrl() ? 'real server' : NEEDS_SERVER})`, () => {
  it('loses no acknowledged order and notifies each exactly once after a restart', async () => {
    const database = await createMigratedDatabase('orders_rel_kill9');
    cleanups.push(database.drop);
    const env = { WORKER_BACKOFF_BASE_MS: '50', WORKER_BACKOFF_MAX_MS: '500' };
    const first = await startServe(database.url, env);

    const killed = new Promise<void>((resolve) =>
      setTimeout(() => {
        first.proc.child.kill('SIGKILL');
        resolve();
      }, 1_500),
    );
    const load = await runLoad({
      baseUrl: first.base,
      connections: 32,
      durationMs: 10_000,
      keepBodies: true,
      next: () => orderRequest('kill9'),
      until: first.proc.exited,
    });
    await killed;
    await first.proc.exited;
    console.log(summary('kill -9', load));
    const acknowledged = (load.bodies as { id: string }[]).map((b) => b.id);
    expect(acknowledged.length).toBeGreaterThan(50);

    const restartedAt = performance.now();
    const second = await startServe(database.url, env);
    cleanups.push(async () => {
      second.proc.child.kill('SIGTERM');
      await second.proc.exited;
    });
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    cleanups.push(() => client.end());

    // Every acknowledged order exists with exactly one event.
    const perOrder = await client.query<{ id: string; events: number }>(
      `SELECT o.id, count(e.id)::int AS events FROM orders o
       LEFT JOIN outbox_events e ON e.aggregate_id = o.id AND e.type = 'OrderCreated'
       WHERE o.id = ANY($1::uuid[]) GROUP BY o.id`,
      [acknowledged],
    );
    expect(perOrder.rows).toHaveLength(acknowledged.length);
    expect(perOrder.rows.every((r) => r.events === 1)).toBe(true);

    // The restarted worker delivers everything (including what the killed one had claimed,
    // after its lease) exactly once.
    const claimedByTheDead = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM outbox_events WHERE status = 'processing'`,
    );
    const deadline = Date.now() + 120_000;
    let pending = -1;
    while (Date.now() < deadline) {
      const r = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM outbox_events WHERE status <> 'processed'`,
      );
      pending = r.rows[0]!.n;
      if (pending === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(pending).toBe(0);
    const recoveredMs = performance.now() - restartedAt;
    console.log(
      `[kill -9] every event processed ${(recoveredMs / 1000).toFixed(1)} s after the restart began ` +
        `(${claimedByTheDead.rows[0]!.n} events were processing when it came up, most claimed by the killed process)`,
    );
    expect(recoveredMs).toBeLessThan(10_000);
    const totals = await client.query<{
      orders: number;
      events: number;
      notifications: number;
      duplicates: number;
    }>(
      `SELECT (SELECT count(*)::int FROM orders) AS orders,
              (SELECT count(*)::int FROM outbox_events) AS events,
              (SELECT count(*)::int FROM notifications) AS notifications,
              (SELECT count(*)::int FROM (SELECT order_id FROM notifications GROUP BY order_id HAVING count(*) > 1) d) AS duplicates`,
    );
    console.log(
      `[kill -9] acknowledged ${acknowledged.length}; after restart ${JSON.stringify(totals.rows[0])}`,
    );
    const t = totals.rows[0]!;
    expect(t.orders).toBeGreaterThanOrEqual(acknowledged.length);
    expect(t.events).toBe(t.orders);
    expect(t.notifications).toBe(t.events);
    expect(t.duplicates).toBe(0);
  });
});
