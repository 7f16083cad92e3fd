/**
 * The database goes away under load (every backend of the app terminated, repeatedly, as a
 * failover or restart does): requests get 503 + Retry-After during the outage only, /readyz
 * follows, and everything recovers by itself with no restart of `orders`.
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

describe.skipIf(!serverUrl())(`database outage (${serverUrl() ? 'real server' : NEEDS_SERVER})`, () => {
  it('answers 503 during the outage and recovers without a restart', async () => {
    const database = await createMigratedDatabase('orders_rel_outage');
    cleanups.push(database.drop);
    const server = await startServe(database.url, { WORKER_ENABLED: 'false' });
    cleanups.push(async () => {
      server.proc.child.kill('SIGTERM');
      await server.proc.exited;
    });
    const admin = new pg.Client({ connectionString: serverUrl()! });
    await admin.connect();
    cleanups.push(() => admin.end());
    const dbName = new URL(database.url).pathname.slice(1);

    // Outage: for 1.5 s, forbid new connections and terminate every existing one.
    const outage = (async () => {
      await new Promise((r) => setTimeout(r, 1_000));
      await admin.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS false`);
      const until = Date.now() + 1_500;
      while (Date.now() < until) {
        await admin.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
          [dbName],
        );
        await new Promise((r) => setTimeout(r, 100));
      }
      const readyDuring = (await fetch(`${server.base}/readyz`)).status;
      await admin.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS true`);
      return readyDuring;
    })();

    const during = await runLoad({
      baseUrl: server.base,
      connections: 16,
      durationMs: 3_000,
      next: () => orderRequest('outage'),
    });
    const readyDuring = await outage;
    console.log(summary('outage', during), `; /readyz during outage ${readyDuring}`);
    expect(readyDuring).toBe(503);
    const statuses = Object.keys(during.statuses).map(Number);
    expect(statuses.every((s) => s === 201 || s === 503)).toBe(true);
    expect(during.statuses[503] ?? 0).toBeGreaterThan(0);
    expect(during.broken).toEqual({});

    // Recovery: no restart; within a few seconds every request succeeds again.
    const recovered = Date.now();
    while ((await fetch(`${server.base}/readyz`)).status !== 200) {
      expect(Date.now() - recovered).toBeLessThan(10_000);
      await new Promise((r) => setTimeout(r, 100));
    }
    const after = await runLoad({
      baseUrl: server.base,
      connections: 16,
      durationMs: 1_500,
      next: () => orderRequest('after'),
    });
    console.log(summary('after outage', after), `; ready again after ${Date.now() - recovered} ms`);
    expect(Object.keys(after.statuses)).toEqual(['201']);
    expect(after.broken).toEqual({});
  });
});
