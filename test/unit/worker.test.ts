/**
 * The worker's scheduling against a stub database (no SQL runs): wake-ups coalesce into few
 * claim rounds, stop() is idempotent and leaves nothing running, options are checked.
 */
import type pg from 'pg';
import { describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config.js';
import type { Db, QueryOptions } from '../../src/platform/db.js';
import { createLogger } from '../../src/platform/logger.js';
import { createMetrics } from '../../src/platform/metrics.js';
import { sleep } from '../../src/platform/shutdown.js';
import { createWorker, workerOptionsFromConfig } from '../../src/worker/index.js';

const logger = createLogger('silent');

/** A Db whose claims find nothing; records the statements the worker sends. */
function stubDb(options: { claimDelayMs?: number } = {}) {
  const calls: { name: string; wokenIds: string[] }[] = [];
  const query = async (text: string | pg.QueryConfig, values?: readonly unknown[]) => {
    const name = typeof text === 'string' ? text : (text.name ?? text.text);
    if (name === 'outbox.claim') {
      calls.push({ name, wokenIds: (values?.[2] as string[]) ?? [] });
      if (options.claimDelayMs) await sleep(options.claimDelayMs);
      return { rows: [{ id: null, next_due_in_ms: null }], rowCount: 1 };
    }
    calls.push({ name, wokenIds: [] });
    return { rows: [], rowCount: 0 };
  };
  const db = {
    query,
    transaction: async () => {
      throw new Error('not used');
    },
    stats: () => ({ total: 0, idle: 0, waiting: 0, max: 1 }),
    close: async () => undefined,
    pool: undefined,
  } as unknown as Db;
  return { db, calls, claims: () => calls.filter((c) => c.name === 'outbox.claim') };
}

function worker(db: Db, options = {}) {
  return createWorker({
    db,
    logger,
    metrics: createMetrics({ defaultMetrics: false }),
    publisher: null,
    options: workerOptionsFromConfig(loadConfig({}), {
      housekeepingIntervalMs: 0,
      pollIntervalMs: 60_000,
      maxIdlePollIntervalMs: 60_000,
      ...options,
    }),
  });
}

describe('worker scheduling', () => {
  it('coalesces a burst of wake-ups into a few claim rounds that carry the woken ids', async () => {
    const stub = stubDb({ claimDelayMs: 5 });
    const w = worker(stub.db);
    await w.start();
    await sleep(20);
    const before = stub.claims().length;
    const ids = Array.from(
      { length: 2_000 },
      (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    );
    for (const id of ids) w.wake(id);
    const carried = () => new Set(stub.claims().flatMap((r) => r.wokenIds)).size;
    for (let waited = 0; carried() < ids.length && waited < 5_000; waited += 20) await sleep(20);
    const rounds = stub.claims().slice(before);
    await w.stop({ timeoutMs: 1_000 });
    // 2,000 wake-ups, batch size 50: about 40 rounds, far fewer than one per wake-up.
    expect(rounds.length).toBeGreaterThanOrEqual(40);
    expect(rounds.length).toBeLessThan(100);
    expect(new Set(rounds.flatMap((r) => r.wokenIds)).size).toBe(2_000);
  });

  it('stop() is idempotent, wake() never throws afterwards, and nothing keeps running', async () => {
    const stub = stubDb();
    const w = worker(stub.db, { pollIntervalMs: 10, maxIdlePollIntervalMs: 20 });
    await w.start();
    await w.start(); // idempotent too
    await sleep(100);
    expect(stub.claims().length).toBeGreaterThan(2); // the poller runs
    const first = w.stop({ timeoutMs: 500 });
    expect(w.stop({ timeoutMs: 500 })).toBe(first);
    await first;
    const claimsAtStop = stub.claims().length;
    expect(() => w.wake('00000000-0000-4000-8000-000000000001')).not.toThrow();

    const cpuBefore = process.cpuUsage();
    await sleep(1_000);
    const cpu = process.cpuUsage(cpuBefore);
    expect(stub.claims().length).toBe(claimsAtStop); // no claim after stop
    expect((cpu.user + cpu.system) / 1000).toBeLessThan(150);
  });

  it('stop() before start() resolves and start() afterwards does nothing', async () => {
    const stub = stubDb();
    const w = worker(stub.db);
    await w.stop({ timeoutMs: 100 });
    await w.start();
    await sleep(30);
    expect(stub.claims()).toHaveLength(0);
  });

  it('backs off while the database fails, instead of hammering it', async () => {
    let claims = 0;
    const failing = {
      ...stubDb().db,
      query: async () => {
        claims++;
        throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
      },
    } as unknown as Db;
    const w = worker(failing, { pollIntervalMs: 20, maxIdlePollIntervalMs: 20, maxErrorBackoffMs: 400 });
    await w.start();
    for (let i = 0; i < 50; i++) {
      w.wake(`00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
      await sleep(10);
    }
    await w.stop({ timeoutMs: 200 });
    // 500 ms at a 20 ms poll would be 25 rounds without backoff; wake-ups do not bypass it.
    expect(claims).toBeLessThan(12);
  });

  it('ends a claim backoff on its timer, even when the wall clock steps back meanwhile', async () => {
    const stub = stubDb();
    let failures = 0;
    const flaky = {
      ...stub.db,
      query: async (text: string | pg.QueryConfig, values?: readonly unknown[]) => {
        if (failures++ === 0) {
          throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
        }
        return stub.db.query(text, values);
      },
    } as unknown as Db;
    const w = worker(flaky, { pollIntervalMs: 20, maxIdlePollIntervalMs: 20 });
    await w.start();
    await sleep(5); // the first claim failed: backing off for one poll interval
    const realNow = Date.now.bind(Date);
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => realNow() - 60_000); // NTP step
    try {
      await sleep(200);
    } finally {
      clock.mockRestore();
      await w.stop({ timeoutMs: 200 });
    }
    expect(stub.claims().length).toBeGreaterThan(2);
  });
});

describe('worker stop', () => {
  it('what a claim returns after the drain deadline is released before stop() resolves', async () => {
    const eventId = '00000000-0000-4000-8000-000000000002';
    const stub = stubDb();
    const released: unknown[][] = [];
    let claims = 0;
    const db = {
      ...stub.db,
      query: async (text: string | pg.QueryConfig, values?: readonly unknown[], options?: QueryOptions) => {
        const name = typeof text === 'string' ? text : text.name;
        if (name === 'outbox.claim' && claims++ === 1) {
          // The second round is slow (a lock wait); it had committed when the cancel arrived,
          // so it still returns its event, 50 ms after the cancel (or after 3 s without one).
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 3_000);
            options?.signal?.addEventListener('abort', () => {
              clearTimeout(timer);
              setTimeout(resolve, 50);
            });
          });
          const event = {
            id: eventId,
            type: 'OrderCreated',
            aggregate_type: 'order',
            aggregate_id: eventId,
            payload: {},
            trace_context: null,
            attempts: 1,
            created_at: new Date(),
            next_due_in_ms: null,
          };
          return { rows: [event, { id: null, next_due_in_ms: null }], rowCount: 2 };
        }
        if (name === 'outbox.release') {
          released.push([...(values ?? [])]);
          return { rows: [], rowCount: 1 };
        }
        return stub.db.query(text, values);
      },
    } as unknown as Db;
    const w = worker(db, { pollIntervalMs: 20, maxIdlePollIntervalMs: 20 });
    await w.start();
    for (let waited = 0; claims < 2 && waited < 2_000; waited += 10) await sleep(10);
    const started = performance.now();
    await w.stop({ timeoutMs: 1_000 });
    expect(performance.now() - started).toBeLessThan(1_500);
    expect(released).toEqual([[[eventId], [1], expect.any(String)]]);
  });
});

describe('worker pre-claims', () => {
  const eventFor = (n: number) => ({
    id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    type: 'OrderCreated',
    aggregateType: 'order',
    aggregateId: '00000000-0000-4000-8000-000000000000',
    payload: { id: '00000000-0000-4000-8000-000000000000', customerId: 'c1' },
    traceContext: null,
    attempts: 1,
    createdAt: new Date(),
  });

  /** A Db that records completions and releases (values of the statement), claims finding nothing. */
  function recordingDb() {
    const stub = stubDb();
    const written: { name: string; ids: unknown }[] = [];
    const db = {
      ...stub.db,
      query: async (text: string | pg.QueryConfig, values?: readonly unknown[]) => {
        const name = typeof text === 'string' ? text : (text.name ?? '');
        if (name === 'outbox.complete' || name === 'outbox.release') {
          written.push({ name, ids: values?.[0] });
          const ids = values?.[0] as string[];
          return { rows: ids.map((id) => ({ id, type: 'OrderCreated', notified: true, lag_seconds: 0 })) };
        }
        return stub.db.query(text, values);
      },
    } as unknown as Db;
    return { db, written, claims: stub.claims };
  }

  it('none before start() or after stop(); while running, one carrying the worker id and lease', async () => {
    const { db } = recordingDb();
    const w = worker(db, { workerId: 'w-pre', leaseMs: 8_000 });
    expect(w.preClaim()).toBeUndefined();
    await w.start();
    const claim = w.preClaim();
    expect(claim).toMatchObject({ workerId: 'w-pre', leaseMs: 8_000 });
    claim!.cancel();
    await w.stop({ timeoutMs: 500 });
    expect(w.preClaim()).toBeUndefined();
  });

  it('an adopted event is handled and completed without a claim round', async () => {
    const { db, written, claims } = recordingDb();
    const w = worker(db);
    await w.start();
    for (let waited = 0; claims().length === 0 && waited < 1_000; waited += 5) await sleep(5);
    const roundsBefore = claims().length;
    const event = eventFor(1);
    w.preClaim()!.adopt(event);
    for (let waited = 0; written.length === 0 && waited < 2_000; waited += 10) await sleep(10);
    expect(written).toEqual([{ name: 'outbox.complete', ids: [event.id] }]);
    expect(claims().length).toBe(roundsBefore);
    await w.stop({ timeoutMs: 500 });
  });

  it('never promises more room than the worker may hold; a cancel gives the room back', async () => {
    const { db } = recordingDb();
    // maxHeld = 2 × batch + concurrency = 2 × 2 + 1 = 5
    const w = worker(db, { batchSize: 2, concurrency: 1 });
    await w.start();
    const claims = Array.from({ length: 7 }, () => w.preClaim());
    expect(claims.filter(Boolean)).toHaveLength(5);
    expect(claims.slice(5)).toEqual([undefined, undefined]);
    claims[0]!.cancel();
    claims[0]!.cancel(); // settling twice changes nothing
    const again = w.preClaim();
    expect(again).toBeDefined();
    expect(w.preClaim()).toBeUndefined();
    for (const claim of [...claims.slice(1, 5), again]) claim!.cancel();
    await w.stop({ timeoutMs: 500 });
  });

  it('stop() waits for pre-claims in flight and releases the events adopted meanwhile', async () => {
    const { db, written } = recordingDb();
    const w = worker(db);
    await w.start();
    const inFlight = w.preClaim()!;
    let stopped = false;
    const stopping = w.stop({ timeoutMs: 2_000 }).then(() => {
      stopped = true;
    });
    expect(w.preClaim()).toBeUndefined();
    await sleep(100);
    expect(stopped).toBe(false);
    const late = eventFor(2);
    inFlight.adopt(late); // the order committed while the worker was stopping
    await stopping;
    expect(written).toEqual([{ name: 'outbox.release', ids: [late.id] }]);
  });
});

describe('worker handlers', () => {
  it('an event type named like an Object.prototype property has no handler: dead-lettered', async () => {
    const eventId = '00000000-0000-4000-8000-000000000001';
    const stub = stubDb();
    const failed: unknown[][] = [];
    let claimed = false;
    const db = {
      ...stub.db,
      query: async (text: string | pg.QueryConfig, values?: readonly unknown[]) => {
        const name = typeof text === 'string' ? text : text.name;
        if (name === 'outbox.claim' && !claimed) {
          claimed = true;
          const event = {
            id: eventId,
            type: 'constructor',
            aggregate_type: 'order',
            aggregate_id: eventId,
            payload: {},
            trace_context: null,
            attempts: 1,
            created_at: new Date(),
            next_due_in_ms: null,
          };
          return { rows: [event, { id: null, next_due_in_ms: null }], rowCount: 2 };
        }
        if (name === 'outbox.fail') {
          failed.push([...(values ?? [])]);
          return { rows: [{ id: eventId, type: 'constructor', status: 'dead' }], rowCount: 1 };
        }
        return stub.db.query(text, values);
      },
    } as unknown as Db;
    const w = worker(db, { pollIntervalMs: 20, maxIdlePollIntervalMs: 20 });
    await w.start();
    for (let waited = 0; failed.length === 0 && waited < 2_000; waited += 10) await sleep(10);
    await w.stop({ timeoutMs: 200 });
    expect(failed).toHaveLength(1);
    expect(failed[0]![2]).toEqual([true]); // dead at once: a permanent failure
    expect(failed[0]![4]).toEqual([expect.stringContaining('no handler for event type "constructor"')]);
  });
});

describe('worker options', () => {
  it('a short lease renewed four times per lease; the handler timeout is independent of it', () => {
    const config = loadConfig({});
    expect(workerOptionsFromConfig(config)).toMatchObject({
      leaseMs: 8_000,
      heartbeatMs: 2_000,
      handlerTimeoutMs: 30_000,
      stallAfterMs: 30_000,
    });
    expect(workerOptionsFromConfig(config, { leaseMs: 1_000 }).heartbeatMs).toBe(250);
    expect(() => workerOptionsFromConfig(config, { leaseMs: 1_000, heartbeatMs: 500 })).toThrow(
      /at most a third of leaseMs/,
    );
    expect(() => workerOptionsFromConfig(config, { handlerTimeoutMs: 0 })).toThrow(/positive/);
  });

  it("takes the worker's settings from the configuration; overrides win", () => {
    const config = loadConfig({
      WORKER_CONCURRENCY: '7',
      WORKER_BATCH_SIZE: '9',
      WORKER_MAX_ATTEMPTS: '3',
      WORKER_BACKOFF_BASE_MS: '5',
      WORKER_BACKOFF_MAX_MS: '50',
      NOTIFY_FAILURE_RATE: '0.25',
      NATS_URL: 'nats://nats.example:4222',
    });
    expect(workerOptionsFromConfig(config)).toMatchObject({
      concurrency: 7,
      batchSize: 9,
      maxAttempts: 3,
      backoff: { baseMs: 5, maxMs: 50 },
      notifyFailureRate: 0.25,
      natsUrl: 'nats://nats.example:4222',
    });
    expect(workerOptionsFromConfig(config, { concurrency: 1 }).concurrency).toBe(1);
  });
});
