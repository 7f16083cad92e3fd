/**
 * The built binary against a real PostgreSQL: concurrent migrations, serve, the API, healthcheck
 * and a graceful SIGTERM. (Embedded mode has its own file.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminQuery, NEEDS_SERVER, serverUrl, withDatabase } from '../helpers/db.js';
import { fetchPostOrder, freePort, runOrders, spawnOrders, waitForHttp } from '../helpers/process.js';

const server = serverUrl();
const dbName = `orders_e2e_${process.pid}_${Date.now()}`;
const databaseUrl = server ? withDatabase(server, dbName) : '';

describe.skipIf(!server)(`orders serve on PostgreSQL (${server ? 'real server' : NEEDS_SERVER})`, () => {
  beforeAll(async () => {
    await adminQuery(server!, `CREATE DATABASE ${dbName}`);
  });
  afterAll(async () => {
    await adminQuery(server!, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  });

  it('keeps /readyz at 503 until migrated; three concurrent `migrate up` all succeed', async () => {
    const port = await freePort();
    const serve = spawnOrders(['serve', '--no-worker'], {
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      AUTH_MODE: 'none',
    });
    try {
      await waitForHttp(`http://127.0.0.1:${port}/healthz`, { status: 200 });
      expect(await waitForHttp(`http://127.0.0.1:${port}/readyz`)).toBe(503);
      const health = await runOrders(['healthcheck', '--timeout', '2000'], { PORT: String(port) });
      expect(health.code).toBe(1);

      const runs = await Promise.all(
        [1, 2, 3].map(() => runOrders(['migrate', 'up'], { DATABASE_URL: databaseUrl })),
      );
      for (const r of runs) expect(r.code, r.stderr).toBe(0);
      expect(runs.filter((r) => r.stdout.includes('applied')).length).toBe(1);

      await waitForHttp(`http://127.0.0.1:${port}/readyz`, { status: 200 });
      const ready = await runOrders(['healthcheck'], { PORT: String(port) });
      expect(ready.code).toBe(0);
      const status = await runOrders(['migrate', 'status'], { DATABASE_URL: databaseUrl });
      expect(status.stdout).toContain('schema is current');
    } finally {
      serve.child.kill('SIGTERM');
      expect(await serve.exited).toBe(0);
    }
  });

  it('serves the API and exits 0 on SIGTERM after draining', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const serve = spawnOrders(['serve', '--port', String(port), '--no-worker'], {
      DATABASE_URL: databaseUrl,
      AUTH_MODE: 'none',
      SHUTDOWN_DELAY_MS: '1000',
    });
    await waitForHttp(`${base}/readyz`, { status: 200 });

    const created = await fetchPostOrder(
      base,
      { customerId: 'e2e', currency: 'EUR', items: [{ sku: 'A', quantity: 3, unitPrice: 100 }] },
      { 'idempotency-key': 'e2e-1' },
    );
    expect(created.status).toBe(201);
    const order = (await created.json()) as { id: string; total: number };
    expect(order.total).toBe(300);
    const fetched = await fetch(`${base}${created.headers.get('location')}`);
    expect(await fetched.json()).toEqual(order);
    const invalid = await fetchPostOrder(base, '{"x":1}');
    expect(invalid.status).toBe(400);
    expect(invalid.headers.get('content-type')).toContain('application/problem+json');

    const started = Date.now();
    serve.child.kill('SIGTERM');
    // During SHUTDOWN_DELAY_MS readiness says 503 while other requests are still served.
    await waitForHttp(`${base}/readyz`, { status: 503, timeoutMs: 1_000 });
    const stillServed = await fetch(`${base}/orders/${order.id}`);
    expect(stillServed.status).toBe(200);
    expect(await serve.exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
    const lines = serve
      .stdout()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.some((l) => l.msg === 'shutdown complete')).toBe(true);
    const requestLine = lines.find((l) => l.route === '/orders' && l.statusCode === 201);
    expect(requestLine).toMatchObject({
      method: 'POST',
      requestId: expect.any(String),
      durationMs: expect.any(Number),
    });
  });
});
