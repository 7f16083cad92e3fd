/**
 * Short leases renewed by a heartbeat: a crashed worker's events are delivered within seconds of
 * another worker starting, while a live worker keeps its events for as long as its handlers run,
 * and a worker that cannot renew stops its handlers before anyone else may claim their events.
 * Exactly-once notification holds throughout.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createOrdersService } from '../../src/orders/service.js';
import type { Db } from '../../src/platform/db.js';
import { createMetrics } from '../../src/platform/metrics.js';
import { sleep } from '../../src/platform/shutdown.js';
import {
  createWorker,
  type Worker,
  type WorkerDeps,
  type WorkerOptions,
  workerOptionsFromConfig,
} from '../../src/worker/index.js';
import type { Notifier } from '../../src/worker/notifier.js';
import { createTestDatabase, NEEDS_SERVER, serverUrl, type TestDatabase, testLogger } from '../helpers/db.js';
import { countingNotifier, countRows, eventRows, insertEvents, waitFor } from '../helpers/outbox.js';

let tdb: TestDatabase;
const workers: Worker[] = [];

beforeAll(async () => {
  tdb = await createTestDatabase({ poolMax: 20 });
});

afterAll(async () => {
  await tdb?.drop();
});

beforeEach(async () => {
  await tdb.db.query('TRUNCATE outbox_events, notifications, orders CASCADE');
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop({ timeoutMs: 500 })));
});

function startWorker(deps: Partial<Omit<WorkerDeps, 'options'>>, options: Partial<WorkerOptions>): Worker {
  const worker = createWorker({
    db: tdb.db,
    logger: testLogger,
    metrics: createMetrics({ defaultMetrics: false }),
    publisher: null,
    ...deps,
    options: workerOptionsFromConfig(
      loadConfig({ WORKER_BACKOFF_BASE_MS: '5', WORKER_BACKOFF_MAX_MS: '20' }),
      {
        housekeepingIntervalMs: 0,
        pollIntervalMs: 100,
        maxIdlePollIntervalMs: 200,
        ...options,
      },
    ),
  });
  workers.push(worker);
  void worker.start();
  return worker;
}

/**
 * A pool whose statements all fail from the moment `crash()` is called: the process died (or
 * lost the database), so nothing it holds is released and nothing is renewed.
 */
function crashableDb() {
  let crashed = false;
  const db: Db = {
    ...tdb.db,
    query: ((...args: Parameters<Db['query']>) =>
      crashed
        ? Promise.reject(new Error('Connection terminated (simulated crash)'))
        : tdb.db.query(...args)) as Db['query'],
  };
  return {
    db,
    crash: () => {
      crashed = true;
    },
  };
}

const held = (workerId: string) =>
  countRows(
    tdb.db,
    `SELECT count(*)::int AS n FROM outbox_events WHERE status = 'processing' AND locked_by = $1`,
    [workerId],
  );

const processed = () =>
  countRows(tdb.db, `SELECT count(*)::int AS n FROM outbox_events WHERE status = 'processed'`);

/** Never settles on its own; rejects when the worker aborts the handler, recording why. */
function hangingNotifier() {
  const aborted: { eventId: string; reason: unknown; at: Date }[] = [];
  const notifier: Notifier = {
    send: (n, { signal }) =>
      new Promise((_resolve, reject) => {
        signal.addEventListener('abort', () => {
          aborted.push({ eventId: n.eventId, reason: signal.reason, at: new Date() });
          reject(signal.reason);
        });
      }),
  };
  return { notifier, aborted };
}

describe('a crashed worker', () => {
  it('its claimed events are delivered within 10 s of another worker starting, each notified once', async () => {
    // Default lease and heartbeat: what a production worker does.
    const ids = await insertEvents(tdb.db, 20);
    const doomed = crashableDb();
    startWorker({ db: doomed.db, notifier: hangingNotifier().notifier }, { workerId: 'doomed' });
    await waitFor(
      () => held('doomed'),
      (n) => n === 20,
      5_000,
    );
    await sleep(2_500); // at least one heartbeat has renewed the leases
    doomed.crash();

    const startedAt = performance.now();
    const { notifier, sends } = countingNotifier();
    startWorker({ notifier }, { workerId: 'survivor' });
    await waitFor(processed, (n) => n === 20, 10_000);
    const tookMs = performance.now() - startedAt;
    console.log(
      `[crash] a crashed worker's 20 events delivered ${(tookMs / 1000).toFixed(2)} s after the new worker started`,
    );
    expect(tookMs).toBeLessThan(10_000);

    for (const row of await eventRows(tdb.db, ids)) {
      expect(row).toMatchObject({ status: 'processed', attempts: 2, locked_by: null });
      expect(sends.get(row.id)).toBe(1);
    }
    expect(await countRows(tdb.db, 'SELECT count(*)::int AS n FROM notifications')).toBe(20);
  }, 20_000);
});

describe('a process that died after writing a pre-claimed event', () => {
  it('its event is claimed once the lease lapses and delivered at attempt 2, notified once', async () => {
    const orders = createOrdersService({
      db: tdb.db,
      idempotencyTtlHours: 1,
      // The order committed claimed by 'doomed', whose process died before taking the event.
      preClaim: () => ({
        workerId: 'doomed',
        leaseMs: 1_500,
        adopt: () => undefined,
        cancel: () => undefined,
      }),
    });
    const created = await orders.create({
      input: { customerId: 'c-doomed', currency: 'EUR', items: [{ sku: 'A', quantity: 1, unitPrice: 100 }] },
      customerId: 'c-doomed',
    });
    if (created.kind !== 'created') throw new Error('expected a new order');
    const writtenAt = performance.now();
    expect(await held('doomed')).toBe(1);

    const { notifier, sends } = countingNotifier();
    startWorker({ notifier }, { workerId: 'survivor' });
    await waitFor(processed, (n) => n === 1, 10_000);
    // Not before the lease lapsed: until then the event was the dead process's.
    expect(performance.now() - writtenAt).toBeGreaterThan(1_400);
    const [row] = await eventRows(tdb.db, [created.eventId]);
    expect(row).toMatchObject({ status: 'processed', attempts: 2, locked_by: null });
    expect(sends.get(created.eventId)).toBe(1);
  }, 15_000);
});

describe('a live worker', () => {
  it.skipIf(!serverUrl())(
    `keeps its events while a handler runs for several leases: no other worker runs them (${NEEDS_SERVER})`,
    async () => {
      const ids = await insertEvents(tdb.db, 3);
      const runs = new Map<string, number>();
      const slow: Notifier = {
        async send(n) {
          runs.set(n.eventId, (runs.get(n.eventId) ?? 0) + 1);
          await sleep(3_000); // three leases of 1 s
        },
      };
      startWorker({ notifier: slow }, { workerId: 'slow', leaseMs: 1_000, handlerTimeoutMs: 10_000 });
      await waitFor(
        () => held('slow'),
        (n) => n === 3,
        2_000,
      );
      // A second worker polls all along, ready to take any lease that lapses.
      const other = countingNotifier();
      startWorker(
        { notifier: other.notifier },
        { workerId: 'other', pollIntervalMs: 50, maxIdlePollIntervalMs: 50 },
      );

      await waitFor(processed, (n) => n === 3, 8_000);
      expect(other.sends.size).toBe(0);
      expect([...runs.values()]).toEqual([1, 1, 1]);
      for (const row of await eventRows(tdb.db, ids)) {
        expect(row).toMatchObject({ status: 'processed', attempts: 1 });
      }
      expect(await countRows(tdb.db, 'SELECT count(*)::int AS n FROM notifications')).toBe(3);
    },
    15_000,
  );

  it('cut off from the database, stops its handlers before another worker may claim the events', async () => {
    const ids = await insertEvents(tdb.db, 2);
    // The process lives on, but its statements fail: the heartbeat cannot renew.
    const cut = crashableDb();
    const { notifier, aborted } = hangingNotifier();
    startWorker({ db: cut.db, notifier }, { workerId: 'cut-off', leaseMs: 1_000, handlerTimeoutMs: 10_000 });
    await waitFor(
      () => held('cut-off'),
      (n) => n === 2,
      2_000,
    );
    cut.crash();

    await waitFor(
      async () => aborted.length,
      (n) => n === 2,
      2_000,
    );
    // Stopped while the database still had the events locked for it (same host, same clock).
    const leases = await tdb.db.query<{ id: string; locked_by: string; locked_until: Date }>(
      'SELECT id, locked_by, locked_until FROM outbox_events WHERE id = ANY($1::uuid[])',
      [ids],
    );
    for (const { eventId, reason, at } of aborted) {
      expect((reason as Error).name).toBe('LeaseLost');
      const lease = leases.rows.find((r) => r.id === eventId)!;
      expect(lease.locked_by).toBe('cut-off');
      expect(at.getTime()).toBeLessThan(lease.locked_until.getTime());
    }
    // Nothing was written for them: the leases lapse, and the next claim delivers them once.
    const { notifier: healthy, sends } = countingNotifier();
    startWorker({ notifier: healthy }, { workerId: 'next' });
    await waitFor(processed, (n) => n === 2, 3_000);
    for (const row of await eventRows(tdb.db, ids)) {
      expect(row).toMatchObject({ status: 'processed', attempts: 2 });
      expect(sends.get(row.id)).toBe(1);
    }
    expect(await countRows(tdb.db, 'SELECT count(*)::int AS n FROM notifications')).toBe(2);
  });
});
