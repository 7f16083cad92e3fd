/**
 * `orders worker`: its probe server, and (when the build exists) the real process: probes,
 * delivery by the poller alone, SIGTERM → drained, exit 0; no DATABASE_URL → exit 2.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/platform/metrics.js';
import { sleep } from '../../src/platform/shutdown.js';
import { createProbeServer } from '../../src/worker/probe-server.js';
import { createTestDatabase, type TestDatabase, testLogger } from '../helpers/db.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUILT = existsSync(`${ROOT}dist/commands/worker.js`);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('the probe server', () => {
  let server: Server;
  let base: string;
  const state = { shuttingDown: false, ready: true, stalled: undefined as string | undefined };

  beforeAll(async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.eventsHandled.inc({ type: 'OrderCreated', outcome: 'processed' });
    server = createProbeServer({
      logger: testLogger,
      metrics,
      isShuttingDown: () => state.shuttingDown,
      readiness: async () => {
        if (!state.ready) throw new Error('connect ECONNREFUSED');
        return true;
      },
      stalled: () => state.stalled,
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('serves /healthz, /readyz and /metrics', async () => {
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await metrics.text()).toContain(
      'orders_events_handled_total{type="OrderCreated",outcome="processed"} 1',
    );
  });

  it('/readyz is 503 problem+json when the database fails, and from the moment shutdown begins', async () => {
    state.ready = false;
    const down = await fetch(`${base}/readyz`);
    expect(down.status).toBe(503);
    expect(down.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(down.headers.get('retry-after')).toBe('5');
    state.ready = true;
    state.shuttingDown = true;
    const stopping = await fetch(`${base}/readyz`);
    expect(stopping.status).toBe(503);
    expect(await stopping.json()).toMatchObject({ status: 503, code: 'unavailable', instance: '/readyz' });
    expect((await fetch(`${base}/healthz`)).status).toBe(200); // liveness is unaffected
    state.shuttingDown = false;
  });

  it('/readyz is 503 problem+json saying why while the claim loop is stalled, though the database answers', async () => {
    state.stalled = 'The worker has not completed a claim round for 31 s (test).';
    const stalled = await fetch(`${base}/readyz`);
    expect(stalled.status).toBe(503);
    expect(stalled.headers.get('retry-after')).toBe('5');
    expect(await stalled.json()).toMatchObject({ code: 'unavailable', detail: state.stalled });
    state.stalled = undefined;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
  });

  it('answers 404 problem+json for other paths and 405 for other methods', async () => {
    const missing = await fetch(`${base}/orders`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: 'not_found' });
    const post = await fetch(`${base}/healthz`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });
});

describe.skipIf(!BUILT)(
  `the orders worker process${BUILT ? '' : ' (skipped: dist/ is missing, run `npm run build` first)'}`,
  () => {
    let tdb: TestDatabase;
    let child: ChildProcess | undefined;

    beforeAll(async () => {
      tdb = await createTestDatabase();
    });

    afterAll(async () => {
      child?.kill('SIGKILL');
      await tdb?.drop();
    });

    const start = (env: Record<string, string | undefined>) => {
      const proc = spawn(process.execPath, [`${ROOT}bin/orders.js`, 'worker'], {
        env: { ...process.env, LOG_LEVEL: 'info', ...env },
      });
      let stdout = '';
      let stderr = '';
      proc.stdout.on('data', (d) => (stdout += d));
      proc.stderr.on('data', (d) => (stderr += d));
      const exited = new Promise<number | null>((resolve) => proc.on('close', resolve));
      return { proc, exited, out: () => stdout, err: () => stderr };
    };

    it('without DATABASE_URL it exits 2 and says what to set', async () => {
      const run = start({ DATABASE_URL: undefined, WORKER_PORT: String(await freePort()) });
      expect(await run.exited).toBe(2);
      expect(run.err()).toMatch(/DATABASE_URL is not set: `orders worker` needs a PostgreSQL server/);
    });

    it('serves its probes, delivers by polling, and drains on SIGTERM with exit 0', async () => {
      const port = await freePort();
      const run = start({
        DATABASE_URL: tdb.url,
        WORKER_PORT: String(port),
        HOST: '127.0.0.1',
        // PGlite is one session shared by every connection: named prepared statements of two
        // pooled connections would collide there, so the process gets one connection, as serve does.
        ...(tdb.kind === 'pglite' ? { DB_POOL_MAX: '1' } : {}),
      });
      child = run.proc;
      const base = `http://127.0.0.1:${port}`;
      const deadline = Date.now() + 15_000;
      for (;;) {
        const ok = await fetch(`${base}/readyz`).then(
          (r) => r.status === 200,
          () => false,
        );
        if (ok) break;
        if (Date.now() > deadline) throw new Error(`worker not ready: ${run.err()}`);
        await sleep(50);
      }
      expect((await fetch(`${base}/healthz`)).status).toBe(200);

      const inserted = await tdb.db.query<{ id: string }>(
        `INSERT INTO outbox_events (id, aggregate_type, aggregate_id, type, payload)
       SELECT gen_random_uuid(), 'order', o, 'OrderCreated', jsonb_build_object('id', o, 'customerId', 'c-proc')
       FROM (SELECT gen_random_uuid() AS o) x RETURNING id`,
      );
      const id = inserted.rows[0]!.id;
      const processedBy = Date.now() + 15_000;
      for (;;) {
        const r = await tdb.db.query<{ status: string }>('SELECT status FROM outbox_events WHERE id = $1', [
          id,
        ]);
        if (r.rows[0]?.status === 'processed') break;
        if (Date.now() > processedBy) {
          throw new Error(
            `the event was not processed in time (${r.rows[0]?.status}): ${run.out()}${run.err()}`,
          );
        }
        await sleep(50);
      }
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/orders_events_handled_total\{type="OrderCreated",outcome="processed"\} 1/);
      expect(metrics).toMatch(/orders_outbox_events\{status="pending"\} 0/);

      run.proc.kill('SIGTERM');
      expect(await run.exited).toBe(0);
      child = undefined;
      const logs = run.out();
      expect(logs).toContain('"msg":"notification sent"');
      expect(logs).toContain('"msg":"worker stopped"');
      expect(logs).toContain('"msg":"shutdown complete"');
    });
  },
);
