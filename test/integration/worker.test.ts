/**
 * The event worker against a real database: wake-up latency, the poller as a safety net,
 * exclusive claims across workers, lease expiry after a crash, retries and dead letters,
 * releasing on stop, redelivery without a second notification, housekeeping and gauges.
 */
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { retryDeadEvents } from '../../src/messaging/outbox-admin.js';
import { createOrdersService } from '../../src/orders/service.js';
import { createDb, type Db } from '../../src/platform/db.js';
import { createLogger, type Logger } from '../../src/platform/logger.js';
import { createMetrics, type Metrics } from '../../src/platform/metrics.js';
import { sleep } from '../../src/platform/shutdown.js';
import { createHousekeeper } from '../../src/worker/housekeeping.js';
import {
  createWorker,
  type Worker,
  type WorkerDeps,
  type WorkerOptions,
  workerOptionsFromConfig,
} from '../../src/worker/index.js';
import type { Notifier } from '../../src/worker/notifier.js';
import { createTestDatabase, NEEDS_SERVER, serverUrl, type TestDatabase, testLogger } from '../helpers/db.js';
import { countingNotifier, countRows, insertEvents as insertEventsInto, waitFor } from '../helpers/outbox.js';

let tdb: TestDatabase;
const workers: Worker[] = [];
const extraDbs: Db[] = [];

beforeAll(async () => {
  tdb = await createTestDatabase({ poolMax: 20 });
});

afterAll(async () => {
  await Promise.all(extraDbs.map((db) => db.close()));
  await tdb?.drop();
});

beforeEach(async () => {
  await tdb.db.query('TRUNCATE outbox_events, notifications, idempotency_keys');
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop({ timeoutMs: 1_000 })));
});

/** Fast test defaults; each test overrides what it exercises. */
function testConfig(env: Record<string, string> = {}) {
  return loadConfig({
    WORKER_BACKOFF_BASE_MS: '5',
    WORKER_BACKOFF_MAX_MS: '20',
    WORKER_MAX_ATTEMPTS: '3',
    ...env,
  });
}

interface Harness {
  worker: Worker;
  metrics: Metrics;
  logLines: () => Record<string, unknown>[];
}

function startWorker(
  overrides: Partial<Omit<WorkerDeps, 'options'>> & { options?: Partial<WorkerOptions> } = {},
  env: Record<string, string> = {},
): Harness {
  const lines: string[] = [];
  const logger: Logger = createLogger('info', {
    destination: new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  });
  const metrics = overrides.metrics ?? createMetrics({ defaultMetrics: false });
  const worker = createWorker({
    db: tdb.db,
    logger,
    metrics,
    publisher: null,
    ...overrides,
    options: workerOptionsFromConfig(testConfig(env), {
      housekeepingIntervalMs: 0,
      pollIntervalMs: 100,
      maxIdlePollIntervalMs: 200,
      ...overrides.options,
    }),
  });
  workers.push(worker);
  void worker.start();
  return {
    worker,
    metrics,
    logLines: () =>
      lines
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** The helper's OrderCreated (or `type`) events, on this file's database. */
const insertEvents = (n: number, type?: string) => insertEventsInto(tdb.db, n, type);

async function eventRow(id: string) {
  const r = await tdb.db.query<{
    status: string;
    attempts: number;
    locked_by: string | null;
    locked_until: Date | null;
    last_error: string | null;
    due: boolean;
  }>(
    `SELECT status, attempts, locked_by, locked_until, last_error, available_at <= now() AS due
     FROM outbox_events WHERE id = $1`,
    [id],
  );
  return r.rows[0]!;
}

async function statusCounts(): Promise<Record<string, number>> {
  const r = await tdb.db.query<{ status: string; n: number }>(
    'SELECT status, count(*)::int AS n FROM outbox_events GROUP BY status',
  );
  return Object.fromEntries(r.rows.map((x) => [x.status, x.n]));
}

const count = (sql: string, values?: unknown[]) => countRows(tdb.db, sql, values);

async function counterValue(metrics: Metrics, outcome: string): Promise<number> {
  const data = await metrics.eventsHandled.get();
  return data.values.filter((v) => v.labels.outcome === outcome).reduce((sum, v) => sum + v.value, 0);
}

describe('delivery', () => {
  it('an order committed through the service is processed within 1 s via the in-process wake-up', async () => {
    // The poller is made too slow to matter: only the wake-up can deliver this fast.
    const { worker, logLines, metrics } = startWorker({
      options: { pollIntervalMs: 30_000, maxIdlePollIntervalMs: 30_000 },
    });
    await sleep(100); // the start-up claim round has found nothing
    const orders = createOrdersService({
      db: tdb.db,
      idempotencyTtlHours: 24,
      onEventCommitted: (id) => worker.wake(id),
    });
    const started = performance.now();
    const created = await orders.create({
      input: { customerId: 'c-wake', currency: 'EUR', items: [{ sku: 'A', quantity: 1, unitPrice: 100 }] },
      customerId: 'c-wake',
    });
    if (created.kind !== 'created') throw new Error('expected a new order');
    await waitFor(
      () => eventRow(created.eventId),
      (r) => r.status === 'processed',
      1_000,
    );
    const latencyMs = performance.now() - started;
    console.log(`[worker] wake-up delivery latency: ${latencyMs.toFixed(1)} ms`);
    expect(latencyMs).toBeLessThan(1_000);

    const note = await tdb.db.query(
      'SELECT order_id, customer_id, channel FROM notifications WHERE event_id = $1',
      [created.eventId],
    );
    expect(note.rows).toEqual([{ order_id: created.order.id, customer_id: 'c-wake', channel: 'email' }]);
    const sent = logLines().filter((l) => l.msg === 'notification sent');
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({
      eventId: created.eventId,
      orderId: created.order.id,
      customerId: 'c-wake',
    });
    expect(await counterValue(metrics, 'processed')).toBe(1);
    const lag = await metrics.eventDeliveryLag.get();
    expect(lag.values.find((v) => v.metricName?.endsWith('_count'))?.value).toBe(1);
  });

  it("an order's event written pre-claimed by the in-process worker is handed over and delivered at attempt 1", async () => {
    const { worker, metrics } = startWorker({
      options: { pollIntervalMs: 30_000, maxIdlePollIntervalMs: 30_000 },
    });
    await sleep(100); // the start-up claim round has found nothing
    const adoptions: (() => void)[] = [];
    const orders = createOrdersService({
      db: tdb.db,
      idempotencyTtlHours: 24,
      onEventCommitted: () => {
        throw new Error('a pre-claimed event needs no wake-up');
      },
      preClaim: () => {
        const claim = worker.preClaim();
        if (!claim) throw new Error('the running worker has room');
        // Held back until the row is checked: as written, before the worker has it.
        return { ...claim, adopt: (event) => adoptions.push(() => claim.adopt(event)) };
      },
    });
    const created = await orders.create({
      input: { customerId: 'c-pre', currency: 'EUR', items: [{ sku: 'A', quantity: 1, unitPrice: 100 }] },
      customerId: 'c-pre',
    });
    if (created.kind !== 'created') throw new Error('expected a new order');
    const written = await tdb.db.query<{ lease_s: number } & Record<string, unknown>>(
      `SELECT status, attempts, locked_by, extract(epoch FROM locked_until - now())::float8 AS lease_s
       FROM outbox_events WHERE id = $1`,
      [created.eventId],
    );
    expect(written.rows[0]).toMatchObject({ status: 'processing', attempts: 1, locked_by: worker.id });
    expect(written.rows[0]!.lease_s).toBeGreaterThan(1);
    expect(adoptions).toHaveLength(1);
    adoptions[0]!();
    await waitFor(
      () => eventRow(created.eventId),
      (r) => r.status === 'processed',
      1_000,
    );
    expect(await eventRow(created.eventId)).toMatchObject({ attempts: 1, locked_by: null });
    expect(
      await count('SELECT count(*)::int AS n FROM notifications WHERE event_id = $1', [created.eventId]),
    ).toBe(1);
    expect(await counterValue(metrics, 'processed')).toBe(1);
  });

  it('a replayed order gives its pre-claim back: nothing is written claimed', async () => {
    const { worker } = startWorker();
    await sleep(100);
    const settled: string[] = [];
    const orders = createOrdersService({
      db: tdb.db,
      idempotencyTtlHours: 24,
      preClaim: () => {
        const claim = worker.preClaim()!;
        return {
          ...claim,
          adopt: (event) => {
            settled.push('adopt');
            claim.adopt(event);
          },
          cancel: () => {
            settled.push('cancel');
            claim.cancel();
          },
        };
      },
    });
    const command = {
      input: { customerId: 'c-rep', currency: 'EUR', items: [{ sku: 'A', quantity: 1, unitPrice: 100 }] },
      customerId: 'c-rep',
      idempotency: { key: 'k-pre-1', fingerprint: 'f1' },
    };
    const first = await orders.create(command);
    const replay = await orders.create(command);
    expect([first.kind, replay.kind]).toEqual(['created', 'replayed']);
    expect(settled).toEqual(['adopt', 'cancel']);
    expect(await count('SELECT count(*)::int AS n FROM outbox_events')).toBe(1);
  });

  it('without any wake-up the backstop poller still delivers', async () => {
    startWorker({ options: { pollIntervalMs: 200, maxIdlePollIntervalMs: 400 } });
    await sleep(500); // idle: the poller has backed off to its slowest interval
    const [id] = await insertEvents(1);
    const started = performance.now();
    await waitFor(
      () => eventRow(id!),
      (r) => r.status === 'processed',
      3_000,
    );
    console.log(`[worker] poll-only delivery latency: ${(performance.now() - started).toFixed(0)} ms`);
    expect(await count('SELECT count(*)::int AS n FROM notifications WHERE event_id = $1', [id])).toBe(1);
  });

  it('an event whose available_at is ahead of the database clock is still claimed by its wake-up', async () => {
    const { worker } = startWorker({ options: { pollIntervalMs: 30_000, maxIdlePollIntervalMs: 30_000 } });
    await sleep(100);
    const [id] = await insertEvents(1);
    // As if the app server's clock ran ahead of the database's.
    await tdb.db.query(`UPDATE outbox_events SET available_at = now() + interval '5 seconds' WHERE id = $1`, [
      id,
    ]);
    worker.wake(id!);
    await waitFor(
      () => eventRow(id!),
      (r) => r.status === 'processed',
      1_000,
    );
  });
});

describe('many workers', () => {
  it.skipIf(!serverUrl())(
    `3 workers drain 2,000 events: each processed once, notified once (${NEEDS_SERVER})`,
    async () => {
      const total = 2_000;
      const { notifier, sends } = countingNotifier();
      const metrics = createMetrics({ defaultMetrics: false });
      const env = { WORKER_CONCURRENCY: '8', WORKER_BATCH_SIZE: '100' };
      await insertEvents(total / 2);
      const started = performance.now();
      const harnesses = [0, 1, 2].map((i) => {
        // Separate pools, as separate replicas would have.
        const db = createDb({
          connectionString: tdb.url,
          max: 5,
          logger: testLogger,
          applicationName: `w${i}`,
        });
        extraDbs.push(db);
        return startWorker({ db, notifier, metrics, options: { workerId: `worker-${i}` } }, env);
      });
      // The other half arrives while they run, each batch waking one of the workers.
      for (let i = 0; i < 10; i++) {
        const ids = await insertEvents(total / 20);
        const w = harnesses[i % 3]!.worker;
        for (const id of ids) w.wake(id);
        await sleep(5);
      }
      await waitFor(statusCounts, (c) => c.processed === total, 25_000);
      const seconds = (performance.now() - started) / 1000;
      console.log(
        `[worker] 3 workers drained ${total} events in ${seconds.toFixed(2)} s (${(total / seconds).toFixed(0)}/s)`,
      );

      expect(await count('SELECT count(*)::int AS n FROM notifications')).toBe(total);
      expect(await count('SELECT count(DISTINCT event_id)::int AS n FROM notifications')).toBe(total);
      expect(sends.size).toBe(total);
      expect([...sends.values()].every((n) => n === 1)).toBe(true);
      expect(await counterValue(metrics, 'processed')).toBe(total);
      expect(
        await count(
          `SELECT count(*)::int AS n FROM outbox_events WHERE attempts <> 1 OR locked_by IS NOT NULL`,
        ),
      ).toBe(0);
      const perWorker = harnesses.map(
        (h) => h.logLines().filter((l) => l.msg === 'notification sent').length,
      );
      console.log(`[worker] notifications per worker: ${perWorker.join(', ')}`);
      expect(perWorker.reduce((a, b) => a + b, 0)).toBe(total);
    },
    30_000,
  );

  it("a crashed worker's claimed events are delivered by another worker once its lease expires", async () => {
    // Worker A claims events, its handler hangs, then "the process dies": every query it makes
    // from now on fails, and it is never stopped. Worker B must take over after the lease.
    let crashed = false;
    const crashable: Db = {
      ...tdb.db,
      query: ((...args: Parameters<Db['query']>) =>
        crashed
          ? Promise.reject(new Error('Connection terminated (simulated crash)'))
          : tdb.db.query(...args)) as Db['query'],
    };
    const ids = await insertEvents(5);
    const hangs: Notifier = { send: () => new Promise(() => undefined) };
    const a = startWorker({
      db: crashable,
      notifier: hangs,
      options: { workerId: 'doomed', leaseMs: 1_000 },
    });
    await waitFor(
      () =>
        count(
          `SELECT count(*)::int AS n FROM outbox_events WHERE status = 'processing' AND locked_by = 'doomed'`,
        ),
      (n) => n === 5,
      2_000,
    );
    crashed = true;
    const crashedAt = performance.now();
    const { notifier, sends } = countingNotifier();
    startWorker({ notifier, options: { workerId: 'survivor' } });

    await waitFor(statusCounts, (c) => c.processed === 5, 5_000);
    const tookMs = performance.now() - crashedAt;
    console.log(
      `[worker] crashed worker's events re-delivered after ${tookMs.toFixed(0)} ms (lease 1000 ms)`,
    );
    expect(tookMs).toBeGreaterThan(500); // not before the lease ran out
    for (const id of ids) {
      expect(await eventRow(id)).toMatchObject({ status: 'processed', attempts: 2, locked_by: null });
      expect(sends.get(id)).toBe(1);
    }
    expect(await count('SELECT count(*)::int AS n FROM notifications')).toBe(5);
    void a;
  });
});

describe('failures', () => {
  it('NOTIFY_FAILURE_RATE=1 dead-letters after WORKER_MAX_ATTEMPTS; `events retry --dead` then delivers once', async () => {
    const failing = startWorker({}, { NOTIFY_FAILURE_RATE: '1', WORKER_MAX_ATTEMPTS: '3' });
    const [id] = await insertEvents(1);
    failing.worker.wake(id!);
    const dead = await waitFor(
      () => eventRow(id!),
      (r) => r.status === 'dead',
      5_000,
    );
    expect(dead.attempts).toBe(3);
    expect(dead.last_error).toMatch(/TransientError: simulated notification failure/);
    expect(dead.locked_by).toBeNull();
    expect(await counterValue(failing.metrics, 'retried')).toBe(2);
    expect(await counterValue(failing.metrics, 'dead')).toBe(1);
    expect(await count('SELECT count(*)::int AS n FROM notifications')).toBe(0);
    await failing.worker.stop({ timeoutMs: 1_000 });

    // Failures stop (a worker with the default rate 0), and the operator retries.
    const healthy = startWorker();
    await sleep(300);
    expect((await eventRow(id!)).status).toBe('dead'); // nothing retries a dead event by itself
    const result = await retryDeadEvents(tdb.db, { allDead: true });
    expect(result.retried).toEqual([id]);
    const done = await waitFor(
      () => eventRow(id!),
      (r) => r.status === 'processed',
      3_000,
    );
    expect(done.attempts).toBe(1); // reset by the retry
    expect(done.last_error).toMatch(/simulated notification failure/); // kept for the record
    expect(await count('SELECT count(*)::int AS n FROM notifications WHERE event_id = $1', [id])).toBe(1);
    expect(healthy.logLines().filter((l) => l.msg === 'notification sent')).toHaveLength(1);
  });

  it('retries a transient failure with backoff and then succeeds', async () => {
    let failuresLeft = 2;
    const { notifier, sends } = countingNotifier(() => failuresLeft-- > 0);
    const { metrics } = startWorker({ notifier }, { WORKER_MAX_ATTEMPTS: '5' });
    const [id] = await insertEvents(1);
    const row = await waitFor(
      () => eventRow(id!),
      (r) => r.status === 'processed',
      3_000,
    );
    expect(row.attempts).toBe(3);
    expect(sends.get(id!)).toBe(3);
    expect(await counterValue(metrics, 'retried')).toBe(2);
    expect(await counterValue(metrics, 'processed')).toBe(1);
  });

  it('an unknown event type is a permanent failure: dead at the first attempt', async () => {
    const { metrics } = startWorker();
    const [id] = await insertEvents(1, 'OrderTeleported');
    const row = await waitFor(
      () => eventRow(id!),
      (r) => r.status === 'dead',
      3_000,
    );
    expect(row.attempts).toBe(1);
    expect(row.last_error).toMatch(/no handler for event type "OrderTeleported"/);
    expect(await counterValue(metrics, 'dead')).toBe(1);
  });

  it('an event whose last allowed attempt never finished (lease expired) is dead-lettered, not run again', async () => {
    const { notifier, sends } = countingNotifier();
    const [id] = await insertEvents(1);
    await tdb.db.query(
      `UPDATE outbox_events SET status = 'processing', attempts = 3, locked_by = 'gone',
         locked_until = now() - interval '1 second' WHERE id = $1`,
      [id],
    );
    startWorker({ notifier }, { WORKER_MAX_ATTEMPTS: '3' });
    const row = await waitFor(
      () => eventRow(id!),
      (r) => r.status === 'dead',
      3_000,
    );
    expect(row.attempts).toBe(4);
    expect(row.last_error).toMatch(/exceeds WORKER_MAX_ATTEMPTS \(3\): the previous attempt's lease expired/);
    expect(sends.size).toBe(0);
  });

  it('an invalid payload is a permanent failure', async () => {
    // Break the payload before the worker starts: a running worker could deliver the event
    // between the insert and the update.
    const [id] = await insertEvents(1);
    await tdb.db.query(`UPDATE outbox_events SET payload = '{"id": 42}' WHERE id = $1`, [id]);
    startWorker();
    const row = await waitFor(
      () => eventRow(id!),
      (r) => r.status === 'dead',
      3_000,
    );
    expect(row.attempts).toBe(1);
    expect(row.last_error).toMatch(/PermanentError: the OrderCreated payload is invalid/);
  });

  it('a handler that overruns its timeout is aborted and retried', async () => {
    let first = true;
    const signals: AbortSignal[] = [];
    const notifier: Notifier = {
      send: (_n, { signal }) => {
        signals.push(signal);
        if (!first) return Promise.resolve();
        first = false;
        return new Promise(() => undefined); // ignores the signal: the worker must not wait for it
      },
    };
    startWorker({ notifier, options: { leaseMs: 2_000, handlerTimeoutMs: 200 } });
    const [id] = await insertEvents(1);
    const row = await waitFor(
      () => eventRow(id!),
      (r) => r.status === 'processed',
      3_000,
    );
    expect(row.attempts).toBe(2);
    expect(row.last_error).toMatch(/did not finish within 200 ms/);
    expect(signals[0]!.aborted).toBe(true);
  });
});

describe('redelivery and stop', () => {
  it('a redelivered event never notifies twice', async () => {
    const { notifier, sends } = countingNotifier();
    const { logLines } = startWorker({ notifier });
    const [id] = await insertEvents(1);
    await waitFor(
      () => eventRow(id!),
      (r) => r.status === 'processed',
      3_000,
    );
    // Redeliver it, as after a lost acknowledgement: back to pending.
    await tdb.db.query(`UPDATE outbox_events SET status = 'pending', processed_at = NULL WHERE id = $1`, [
      id,
    ]);
    await waitFor(
      () => eventRow(id!),
      (r) => r.status === 'processed' && r.attempts === 2,
      3_000,
    );
    expect(sends.get(id!)).toBe(2); // delivered at least once...
    expect(await count('SELECT count(*)::int AS n FROM notifications WHERE event_id = $1', [id])).toBe(1);
    expect(logLines().filter((l) => l.msg === 'notification sent')).toHaveLength(1); // ...notified exactly once
  });

  it('stop() lets a running handler finish within the timeout', async () => {
    let running = 0;
    const notifier: Notifier = {
      send: () => {
        running++;
        return sleep(300);
      },
    };
    const { worker } = startWorker({ notifier });
    const [id] = await insertEvents(1);
    // Running, not only claimed: a claimed event still in the buffer is released at stop.
    await waitFor(
      async () => running,
      (n) => n === 1,
      2_000,
    );
    await worker.stop({ timeoutMs: 5_000 });
    expect((await eventRow(id!)).status).toBe('processed');
  });

  it('stop() aborts handlers still running at the timeout and releases their events at once', async () => {
    const aborted: unknown[] = [];
    let running = 0;
    const notifier: Notifier = {
      send: (_n, { signal }) =>
        new Promise((_resolve, reject) => {
          running++;
          signal.addEventListener('abort', () => {
            aborted.push(signal.reason);
            reject(signal.reason);
          });
        }),
    };
    const { worker } = startWorker({ notifier }, { WORKER_CONCURRENCY: '2', WORKER_BATCH_SIZE: '10' });
    const ids = await insertEvents(5);
    await waitFor(
      () => count(`SELECT count(*)::int AS n FROM outbox_events WHERE status = 'processing'`),
      (n) => n === 5,
      2_000,
    );
    // Claimed is not yet running: wait until both handlers have started (seen once in CI).
    await waitFor(
      async () => running,
      (n) => n === 2,
      2_000,
    );
    const started = performance.now();
    const stopping = worker.stop({ timeoutMs: 300 });
    expect(worker.stop({ timeoutMs: 300 })).toBe(stopping); // idempotent
    await stopping;
    const took = performance.now() - started;
    expect(took).toBeLessThan(1_000);
    expect(aborted).toHaveLength(2); // the two running handlers; three were only buffered
    for (const id of ids) {
      // Released: pending, due now, unlocked, the interrupted attempt given back.
      expect(await eventRow(id)).toMatchObject({
        status: 'pending',
        attempts: 0,
        locked_by: null,
        locked_until: null,
        due: true,
      });
    }
    await worker.stop({ timeoutMs: 300 });
    worker.wake(ids[0]!); // never throws after stop

    // Another worker takes them at once.
    startWorker();
    await waitFor(statusCounts, (c) => c.processed === 5, 2_000);
  });
});

describe('housekeeping and gauges', () => {
  it('purges old processed events with their notifications, and expired idempotency keys', async () => {
    const [oldId, recentId] = await insertEvents(2);
    const deadIds = await insertEvents(1);
    await tdb.db.query(
      `UPDATE outbox_events SET status = 'processed',
         processed_at = CASE WHEN id = $1 THEN now() - interval '8 days' ELSE now() END WHERE id = ANY($2)`,
      [oldId, [oldId, recentId]],
    );
    await tdb.db.query(
      `UPDATE outbox_events SET status = 'dead', created_at = now() - interval '30 days' WHERE id = $1`,
      [deadIds[0]],
    );
    await tdb.db.query(
      `INSERT INTO notifications (event_id, order_id, customer_id, channel)
       SELECT id, aggregate_id, 'c', 'email' FROM outbox_events WHERE id = ANY($1)`,
      [[oldId, recentId]],
    );
    await tdb.db.query(
      `INSERT INTO idempotency_keys (key, fingerprint, status_code, response_headers, response_body, expires_at)
       SELECT 'k' || n, 'f', 201, '{}', '{}', now() + CASE WHEN n <= 3 THEN interval '-1 hour' ELSE interval '1 hour' END
       FROM generate_series(1, 5) n`,
    );
    const housekeeper = createHousekeeper({
      db: tdb.db,
      logger: testLogger,
      retentionMs: 7 * 86_400_000,
      batchSize: 2, // several small batches
      intervalMs: 0,
    });
    expect(await housekeeper.runOnce()).toEqual({ events: 1, inbox: 0, idempotencyKeys: 3 });
    expect(await count('SELECT count(*)::int AS n FROM outbox_events WHERE id = $1', [oldId])).toBe(0);
    expect(await count('SELECT count(*)::int AS n FROM notifications WHERE event_id = $1', [oldId])).toBe(0);
    expect(await count('SELECT count(*)::int AS n FROM notifications WHERE event_id = $1', [recentId])).toBe(
      1,
    );
    expect(await count(`SELECT count(*)::int AS n FROM outbox_events WHERE status = 'dead'`)).toBe(1); // never purged
    expect(await count('SELECT count(*)::int AS n FROM idempotency_keys')).toBe(2);
  });

  it('exposes outbox depth, dead count and oldest pending age as gauges read at scrape time', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const { worker } = startWorker({ metrics, handlers: {} }); // no handlers: everything dies
    await worker.stop({ timeoutMs: 1_000 });
    await insertEvents(3);
    await tdb.db.query(
      `UPDATE outbox_events SET available_at = now() - interval '42 seconds', created_at = now() - interval '1 minute'`,
    );
    await insertEvents(1, 'Whatever');
    await tdb.db.query(`UPDATE outbox_events SET status = 'dead' WHERE type = 'Whatever'`);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/orders_outbox_events\{status="pending"\} 3/);
    expect(text).toMatch(/orders_outbox_events\{status="processing"\} 0/);
    expect(text).toMatch(/orders_outbox_events\{status="dead"\} 1/);
    const age = Number(/^orders_outbox_oldest_pending_age_seconds (\S+)$/m.exec(text)?.[1]);
    expect(age).toBeGreaterThanOrEqual(42);
    expect(age).toBeLessThan(60);
  });
});
