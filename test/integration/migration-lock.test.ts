/**
 * The domains migration (1764000000005) takes the order tables' exclusive lock. While it waits
 * for it, every query on those tables queues behind it, so it waits at most 1 s (lock_timeout),
 * under the service's 2 s: a transaction that holds a table for long makes the migration fail
 * and change nothing, never stall the service. `orders migrate up` says what to do about it.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/platform/migrations.js';
import { createTestDatabase, NEEDS_SERVER, serverUrl, type TestDatabase, testLogger } from '../helpers/db.js';
import { runOrders } from '../helpers/process.js';

describe.skipIf(!serverUrl())(
  `migrate up while a long transaction holds the orders table (${serverUrl() ? 'real server' : NEEDS_SERVER})`,
  () => {
    let tdb: TestDatabase;

    beforeAll(async () => {
      tdb = await createTestDatabase();
      // Back to just before the domains, with an order to read.
      await migrate({ databaseUrl: tdb.url, direction: 'down', count: 1, logger: testLogger });
      await tdb.db.query(
        `INSERT INTO orders (id, customer_id, currency, total) VALUES ('00000000-0000-4000-8000-000000000001', 'c', 'EUR', 1)`,
      );
    });

    afterAll(async () => {
      await tdb?.drop();
    });

    it('gives up after its 1 s lock_timeout with nothing changed, while the queries queued behind it go on; then applies', async () => {
      // A report that holds orders (ACCESS SHARE) in an open transaction.
      const report = new pg.Client({ connectionString: tdb.url });
      await report.connect();
      try {
        await report.query('BEGIN');
        await report.query('SELECT count(*) FROM orders');

        const started = Date.now();
        const migrating = runOrders(['migrate', 'up'], { MIGRATE_DATABASE_URL: tdb.url, LOG_LEVEL: 'error' });
        // A read of the service arrives while the migration waits for its lock: it queues behind
        // it, and goes on once the migration gives up (the pool's lock_timeout is 2 s).
        await waitForLockWait(tdb, Date.now() + 10_000);
        const read = await tdb.db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders');
        expect(read.rows[0]?.n).toBe(1);

        const failed = await migrating;
        expect(failed.code).toBe(1);
        expect(failed.stderr).toContain('gave up waiting for a table lock');
        expect(failed.stderr).toContain('pg_stat_activity');
        expect(failed.stderr).toContain('(55P03)');
        // Its 1 s wait, plus the process's start: well under the service's 2 s per query.
        expect(Date.now() - started).toBeLessThan(10_000);

        // Nothing of it is left: no domain, the table's own CHECKs, the migration still pending.
        const domains = await tdb.db.query(`SELECT 1 FROM pg_type WHERE typname = 'order_customer_id'`);
        expect(domains.rowCount).toBe(0);
        const status = await runOrders(['migrate', 'status'], { MIGRATE_DATABASE_URL: tdb.url });
        expect(status.stdout).toContain('pending  1764000000005_check_domains');
      } finally {
        await report.query('ROLLBACK').catch(() => undefined);
        await report.end();
      }

      const applied = await runOrders(['migrate', 'up'], {
        MIGRATE_DATABASE_URL: tdb.url,
        LOG_LEVEL: 'error',
      });
      expect(applied).toMatchObject({ code: 0, stdout: 'applied 1: 1764000000005_check_domains\n' });
    });
  },
);

/** Until a lock on orders is waited for (the migration's ALTER queued behind the report). */
async function waitForLockWait(tdb: TestDatabase, deadline: number): Promise<void> {
  for (;;) {
    const waiting = await tdb.db.query(
      `SELECT 1 FROM pg_locks WHERE relation = 'orders'::regclass AND mode = 'AccessExclusiveLock' AND NOT granted`,
    );
    if (waiting.rowCount) return;
    if (Date.now() > deadline) throw new Error('the migration never waited for the orders table');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
