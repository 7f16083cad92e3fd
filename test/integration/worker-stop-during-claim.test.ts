/**
 * stop() while a claim is still running: at the drain deadline the claim is cancelled on the
 * server, so its events stay pending with no attempt spent, instead of being claimed after the
 * worker is gone and waiting out their lease.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createMetrics } from '../../src/platform/metrics.js';
import { sleep } from '../../src/platform/shutdown.js';
import { createWorker, workerOptionsFromConfig } from '../../src/worker/index.js';
import { createTestDatabase, NEEDS_SERVER, serverUrl, type TestDatabase, testLogger } from '../helpers/db.js';
import { eventRows, insertEvents, waitFor } from '../helpers/outbox.js';

let tdb: TestDatabase;

beforeAll(async () => {
  tdb = await createTestDatabase();
});

afterAll(async () => {
  await tdb?.drop();
});

describe.skipIf(!serverUrl())(`stop() during a claim (${serverUrl() ? 'real server' : NEEDS_SERVER})`, () => {
  it('a claim still blocked at the stop deadline is cancelled: its events stay pending, no attempt spent', async () => {
    const ids = await insertEvents(tdb.db, 3);
    // Hold a lock every claim must wait for, as a long-running migration or VACUUM FULL would.
    const blocker = new pg.Client({ connectionString: tdb.url });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE outbox_events IN ACCESS EXCLUSIVE MODE');
      const worker = createWorker({
        db: tdb.db,
        logger: testLogger,
        metrics: createMetrics({ defaultMetrics: false }),
        publisher: null,
        options: workerOptionsFromConfig(loadConfig({}), { housekeepingIntervalMs: 0 }),
      });
      await worker.start();
      await waitFor(
        async () => {
          const r = await tdb.db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE SKIP LOCKED%'`,
          );
          return r.rows[0]!.n;
        },
        (n) => n === 1,
        2_000,
      ); // the first claim round waits for the lock

      const started = performance.now();
      await worker.stop({ timeoutMs: 500 });
      expect(performance.now() - started).toBeLessThan(1_500);
    } finally {
      // The lock goes away; a claim still running would now take the events.
      await blocker.query('ROLLBACK');
      await blocker.end();
    }
    await sleep(300);
    for (const row of await eventRows(tdb.db, ids)) {
      expect(row).toMatchObject({ status: 'pending', attempts: 0, locked_by: null });
    }
  });
});
