/**
 * Statements have a time limit, and a connection that stops answering (half-open: the socket
 * stays open, nothing comes back) is noticed in seconds: the worker's /readyz turns 503 while its
 * claim loop is stuck, the dead connection is dropped, and delivery resumes when the network
 * heals. The half-open connection is a TCP proxy in this file that stops forwarding.
 */
import type { Server } from 'node:http';
import { type AddressInfo, connect, createServer as createTcpServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createDb, type Db } from '../../src/platform/db.js';
import { createMetrics } from '../../src/platform/metrics.js';
import { createWorker, workerOptionsFromConfig } from '../../src/worker/index.js';
import { createProbeServer } from '../../src/worker/probe-server.js';
import { createTestDatabase, NEEDS_SERVER, serverUrl, type TestDatabase, testLogger } from '../helpers/db.js';
import { countRows, insertEvents, waitFor } from '../helpers/outbox.js';

let tdb: TestDatabase;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  tdb = await createTestDatabase();
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await tdb?.drop();
});

/**
 * Forwards to `target` until blackhole(): from then on every connection open now or later is
 * half-open (accepted, kept open, its bytes dropped both ways), as behind a NAT or firewall that
 * lost its state. restore() forwards new connections again; the dead ones stay dead.
 */
async function startProxy(target: URL) {
  let forwarding = true;
  const pairs = new Set<{ client: Socket; upstream: Socket; dead: boolean }>();
  const server = createTcpServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    const pair = { client, upstream, dead: !forwarding };
    pairs.add(pair);
    client.on('data', (chunk) => {
      if (!pair.dead) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!pair.dead) client.write(chunk);
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    for (const socket of [client, upstream]) {
      socket.on('error', close);
      socket.on('close', close);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as AddressInfo).port);
  return {
    url: url.toString(),
    blackhole() {
      forwarding = false;
      for (const pair of pairs) pair.dead = true;
    },
    restore() {
      forwarding = true;
    },
    async close() {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function readyz(base: string): Promise<{ status: number; detail?: string }> {
  try {
    const response = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2_000) });
    const body = (await response.json()) as { detail?: string };
    return { status: response.status, detail: body.detail };
  } catch (error) {
    return { status: 0, detail: String(error) }; // the probe itself hung
  }
}

describe.skipIf(!serverUrl())(`statement limits (${serverUrl() ? 'real server' : NEEDS_SERVER})`, () => {
  it('every pool has a statement timeout: a statement running past it is ended by the server', async () => {
    const pooled = createDb({ connectionString: tdb.url, max: 1, logger: testLogger });
    const strict = createDb({
      connectionString: tdb.url,
      max: 1,
      logger: testLogger,
      statementTimeoutMillis: 200,
    });
    cleanups.push(
      () => pooled.close(),
      () => strict.close(),
    );
    const shown = await pooled.query<{ statement_timeout: string }>('SHOW statement_timeout');
    expect(shown.rows[0]!.statement_timeout).toBe('30s');

    const started = performance.now();
    await expect(strict.query('SELECT pg_sleep(3)')).rejects.toMatchObject({ code: '57014' });
    expect(performance.now() - started).toBeLessThan(1_500);
    expect((await strict.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });
});

describe.skipIf(!serverUrl())(
  `a half-open database connection (${serverUrl() ? 'real server' : NEEDS_SERVER})`,
  () => {
    it("the worker's /readyz turns 503 within seconds, and it delivers again once the network heals", async () => {
      const proxy = await startProxy(new URL(tdb.url));
      cleanups.push(() => proxy.close());
      const db: Db = createDb({
        connectionString: proxy.url,
        max: 3,
        logger: testLogger,
        statementTimeoutMillis: 1_000,
        connectionTimeoutMillis: 1_000,
      });
      cleanups.push(() => db.close());
      const worker = createWorker({
        db,
        logger: testLogger,
        metrics: createMetrics({ defaultMetrics: false }),
        publisher: null,
        options: workerOptionsFromConfig(loadConfig({}), {
          housekeepingIntervalMs: 0,
          pollIntervalMs: 100,
          maxIdlePollIntervalMs: 200,
          maxErrorBackoffMs: 500,
          stallAfterMs: 1_500,
        }),
      });
      cleanups.push(() => worker.stop({ timeoutMs: 500 }));
      // The database itself answers (a direct connection): only this worker's connections hang.
      const probe: Server = createProbeServer({
        logger: testLogger,
        metrics: createMetrics({ defaultMetrics: false }),
        isShuttingDown: () => false,
        readiness: async (signal) => (await tdb.db.query('SELECT 1', undefined, { signal })).rowCount === 1,
        stalled: () => worker.stalled(),
      });
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      cleanups.push(() => new Promise((resolve) => probe.close(resolve)));
      const base = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;

      const processed = () =>
        countRows(tdb.db, `SELECT count(*)::int AS n FROM outbox_events WHERE status = 'processed'`);
      await worker.start();
      await insertEvents(tdb.db, 1);
      await waitFor(processed, (n) => n === 1, 3_000);
      expect((await readyz(base)).status).toBe(200);

      proxy.blackhole();
      const cutAt = performance.now();
      await insertEvents(tdb.db, 3);
      const down = await waitFor(
        () => readyz(base),
        (r) => r.status === 503,
        10_000,
      );
      const noticedMs = performance.now() - cutAt;
      console.log(
        `[half-open] /readyz 503 ${(noticedMs / 1000).toFixed(1)} s after the connection went silent`,
      );
      expect(down.detail).toMatch(/has not completed a claim round/);
      expect(noticedMs).toBeLessThan(6_000);

      proxy.restore();
      const healedAt = performance.now();
      await waitFor(processed, (n) => n === 4, 10_000);
      await waitFor(
        () => readyz(base),
        (r) => r.status === 200,
        3_000,
      );
      console.log(
        `[half-open] delivering again ${((performance.now() - healedAt) / 1000).toFixed(1)} s after the network healed`,
      );
    }, 30_000);
  },
);
