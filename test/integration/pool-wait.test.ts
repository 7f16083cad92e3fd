/**
 * Waiting for a connection: a caller waits at most `connectionTimeoutMillis` for a busy pool, a
 * signal cuts the wait short, and a connection that comes after the caller gave up goes back to
 * the pool for the next one. A connect that never completes (a server that accepts and says
 * nothing) fails within the same bound and frees its slot.
 */

import type { AddressInfo } from 'node:net';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDb, DatabaseUnavailableError, type Db } from '../../src/platform/db.js';
import { createTestDatabase, NEEDS_SERVER, serverUrl, type TestDatabase, testLogger } from '../helpers/db.js';

describe.skipIf(!serverUrl())(`waiting for a pooled connection (${NEEDS_SERVER})`, () => {
  let tdb: TestDatabase;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    tdb = await createTestDatabase();
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  afterAll(async () => {
    await tdb?.drop();
  });

  function onePool(connectionTimeoutMillis: number, connectionString = tdb.url): Db {
    const db = createDb({ connectionString, max: 1, connectionTimeoutMillis, logger: testLogger });
    cleanups.push(() => db.close());
    return db;
  }

  /** Holds the pool's only connection for `ms`. */
  const holdFor = (db: Db, ms: number) =>
    db.transaction((tx) => tx.query('SELECT pg_sleep($1::float8)', [ms / 1000]));

  it('gives up after connectionTimeoutMillis; the connection that frees later serves the next caller', async () => {
    const db = onePool(200);
    await db.query('SELECT 1'); // connected and idle
    const holding = holdFor(db, 700);
    const started = performance.now();
    const waited = db.query('SELECT 1').then(
      () => 'answered',
      (error: unknown) => error,
    );
    const error = await waited;
    const tookMs = performance.now() - started;
    expect(error).toBeInstanceOf(DatabaseUnavailableError);
    expect((error as Error).message).toContain('timeout exceeded when trying to connect');
    expect(tookMs).toBeGreaterThanOrEqual(190);
    expect(tookMs).toBeLessThan(650);
    await holding;
    // The abandoned checkout got the connection and gave it straight back.
    expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    expect(db.stats()).toMatchObject({ total: 1, idle: 1, waiting: 0 });
  });

  it('a signal ends the wait at once, with its reason', async () => {
    const db = onePool(5_000);
    await db.query('SELECT 1');
    const holding = holdFor(db, 500);
    const controller = new AbortController();
    const reason = new Error('the client went away');
    setTimeout(() => controller.abort(reason), 50);
    const started = performance.now();
    await expect(db.query('SELECT 1', undefined, { signal: controller.signal })).rejects.toBe(reason);
    expect(performance.now() - started).toBeLessThan(400);
    await holding;
    expect(db.stats()).toMatchObject({ total: 1, idle: 1, waiting: 0 });
  });

  it('a connect that gets no answer fails within the bound and frees its slot', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    cleanups.push(
      () =>
        new Promise((resolve) => {
          for (const socket of sockets) socket.destroy();
          silent.close(resolve);
        }),
    );
    const { port } = silent.address() as AddressInfo;
    const db = onePool(300, `postgres://postgres@127.0.0.1:${port}/none`);
    const started = performance.now();
    await expect(db.query('SELECT 1')).rejects.toBeInstanceOf(DatabaseUnavailableError);
    // Both bounds are 300 ms: the caller's wait, and the connect's own timeout behind it.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(performance.now() - started).toBeLessThan(1_500);
    expect(db.stats()).toMatchObject({ total: 0, waiting: 0 });
  });
});
