/**
 * Deadlines and cancellation: a request whose query is stuck behind a lock gets 504 within
 * REQUEST_TIMEOUT_MS and its query is cancelled on the server; a client that goes away cancels
 * its query the same way. Checked in pg_stat_activity.
 */
import { connect } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NEEDS_SERVER, serverUrl } from '../helpers/db.js';
import { createMigratedDatabase, type RunningServer, startServe } from '../helpers/server.js';

let database: { url: string; drop(): Promise<void> };
let server: Omit<RunningServer, 'dropDatabase'>;
let locker: pg.Client;
let observer: pg.Client;
const TIMEOUT_MS = 800;

describe.skipIf(!serverUrl())(`request deadlines (${serverUrl() ? 'real server' : NEEDS_SERVER})`, () => {
  beforeAll(async () => {
    database = await createMigratedDatabase('orders_rel_deadline');
    server = await startServe(database.url, {
      REQUEST_TIMEOUT_MS: String(TIMEOUT_MS),
      WORKER_ENABLED: 'false',
    });
    locker = new pg.Client({ connectionString: database.url });
    observer = new pg.Client({ connectionString: database.url });
    await locker.connect();
    await observer.connect();
  });
  afterAll(async () => {
    await locker?.end();
    await observer?.end();
    server?.proc.child.kill('SIGTERM');
    await server?.proc.exited;
    await database?.drop();
  });

  /** Queries of the app (application_name orders-serve) that are running or waiting right now. */
  async function appQueries(): Promise<number> {
    const r = await observer.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND application_name = 'orders-serve' AND state = 'active'`,
    );
    return r.rows[0].n;
  }

  async function waitFor(predicate: () => Promise<boolean>, ms: number) {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (await predicate()) return true;
      await new Promise((r) => setTimeout(r, 25));
    }
    return false;
  }

  it('answers 504 within the deadline and leaves nothing running on the server', async () => {
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE');
    try {
      const started = Date.now();
      const res = await fetch(`${server.base}/orders/00000000-0000-4000-8000-000000000000`);
      const elapsed = Date.now() - started;
      const body = (await res.json()) as { code: string };
      console.log(`[deadline] 504 after ${elapsed} ms (REQUEST_TIMEOUT_MS=${TIMEOUT_MS})`);
      expect(res.status).toBe(504);
      expect(body.code).toBe('timeout');
      expect(elapsed).toBeLessThan(TIMEOUT_MS + 700);
      expect(await waitFor(async () => (await appQueries()) === 0, 1_000)).toBe(true);
    } finally {
      await locker.query('ROLLBACK');
    }
  });

  it('cancels the query of a client that disconnects', async () => {
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE');
    try {
      const socket = connect(server.port, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.write(`GET /orders/00000000-0000-4000-8000-000000000001 HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(await waitFor(async () => (await appQueries()) === 1, 2_000)).toBe(true);
      const gone = Date.now();
      socket.destroy();
      expect(await waitFor(async () => (await appQueries()) === 0, 1_000)).toBe(true);
      console.log(`[deadline] query gone ${Date.now() - gone} ms after the client disconnected`);
    } finally {
      await locker.query('ROLLBACK');
    }
  });
});
