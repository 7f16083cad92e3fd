/**
 * The worker's scheduling against a stub database (no SQL runs): wake-ups coalesce into few
 * claim rounds, stop() is idempotent and leaves nothing running, options are checked.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import type { Db } from '../../src/platform/db.js';
import { createLogger } from '../../src/platform/logger.js';
import { createMetrics } from '../../src/platform/metrics.js';
import { sleep } from '../../src/platform/shutdown.js';
import { createWorker, resolveWorkerOptions } from '../../src/worker/index.js';

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
    config: loadConfig({}),
    publisher: null,
    options: { housekeepingIntervalMs: 0, pollIntervalMs: 60_000, maxIdlePollIntervalMs: 60_000, ...options },
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
});

describe('worker options', () => {
  it('requires the handler timeout to fit in the lease', () => {
    expect(() => resolveWorkerOptions({ leaseMs: 1_000, handlerTimeoutMs: 1_000 })).toThrow(/below leaseMs/);
    expect(resolveWorkerOptions({ leaseMs: 1_000 }).handlerTimeoutMs).toBe(500);
    expect(resolveWorkerOptions().leaseMs).toBe(60_000);
    expect(resolveWorkerOptions().handlerTimeoutMs).toBe(30_000);
  });
});
