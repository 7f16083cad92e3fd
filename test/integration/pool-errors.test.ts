/**
 * What the pool does with its connection after a statement fails. A statement that lost a race
 * (lock timeout, deadlock, serialization failure) leaves a healthy session: it goes back to the
 * pool, so a burst of 409 idempotency_key_in_use does not turn into a burst of reconnects. A
 * broken connection is thrown away, and the next caller gets a new one without seeing an error.
 * Each pool has one connection, so "the same backend answers next" means "it was kept".
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOrdersService } from '../../src/orders/service.js';
import { createDb, type Db } from '../../src/platform/db.js';
import { sleep } from '../../src/platform/shutdown.js';
import { createTestDatabase, NEEDS_SERVER, serverUrl, type TestDatabase, testLogger } from '../helpers/db.js';

describe.skipIf(!serverUrl())(`the pool after a failed statement (${NEEDS_SERVER})`, () => {
  let tdb: TestDatabase;
  /** Another session, holding the locks the pool's statements run into. */
  let other: pg.Client;
  const pools: Db[] = [];

  beforeAll(async () => {
    tdb = await createTestDatabase();
    await tdb.db.query('CREATE TABLE contended (id int PRIMARY KEY, n int NOT NULL DEFAULT 0)');
    await tdb.db.query('INSERT INTO contended (id) VALUES (1), (2)');
    other = new pg.Client({ connectionString: tdb.url });
    await other.connect();
  });

  afterEach(async () => {
    await other.query('ROLLBACK');
    await Promise.all(pools.splice(0).map((db) => db.close()));
  });

  afterAll(async () => {
    await other?.end();
    await tdb?.drop();
  });

  function onePool(lockTimeoutMillis: number): Db {
    const db = createDb({ connectionString: tdb.url, max: 1, lockTimeoutMillis, logger: testLogger });
    pools.push(db);
    return db;
  }

  async function backend(db: Db): Promise<number | undefined> {
    return (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
  }

  it('keeps it after a 409 idempotency_key_in_use (lock_timeout, 55P03)', async () => {
    const db = onePool(100);
    const orders = createOrdersService({ db, idempotencyTtlHours: 24 });
    const pid = await backend(db);
    // The key's first request: its transaction has written the key and not committed yet.
    await other.query('BEGIN');
    await other.query(
      `INSERT INTO idempotency_keys (key, fingerprint, status_code, response_headers, response_body, expires_at)
       VALUES ('k-busy', 'f', 201, '{}', '{}', now() + interval '1 hour')`,
    );
    const order = {
      customerId: 'c-1',
      currency: 'EUR',
      items: [{ sku: 'SKU-1', quantity: 1, unitPrice: 100 }],
    };
    const second = orders.create({
      input: order,
      customerId: order.customerId,
      idempotency: { key: 'k-busy', fingerprint: 'f' },
    });
    await expect(second).rejects.toMatchObject({ code: 'idempotency_key_in_use' });
    expect(await backend(db)).toBe(pid);
    expect(db.stats().total).toBe(1);
  });

  it('keeps it after a deadlock (40P01)', async () => {
    const db = onePool(0);
    const pid = await backend(db);
    // Only the pool's session runs the deadlock check (after the default deadlock_timeout, 1 s),
    // so it is the one aborted.
    await other.query(`SET deadlock_timeout = '60s'`);
    await other.query('BEGIN');
    await other.query('UPDATE contended SET n = n + 1 WHERE id = 1');
    const crossing = db.query(`DO $$
      BEGIN
        PERFORM FROM contended WHERE id = 2 FOR UPDATE;
        PERFORM FROM contended WHERE id = 1 FOR UPDATE;
      END $$`);
    crossing.catch(() => undefined);
    await waitUntilBlocked(pid);
    const otherWaits = other.query('UPDATE contended SET n = n + 1 WHERE id = 2');
    await expect(crossing).rejects.toMatchObject({ code: '40P01' });
    await otherWaits;
    expect(await backend(db)).toBe(pid);
    expect(db.stats().total).toBe(1);
  });

  it('keeps it after a serialization failure (40001)', async () => {
    const db = onePool(100);
    const pid = await backend(db);
    // A statement in autocommit never fails serialization; what the pool sees is the SQLSTATE.
    await expect(
      db.query(`DO $$ BEGIN RAISE EXCEPTION 'lost' USING ERRCODE = 'serialization_failure'; END $$`),
    ).rejects.toMatchObject({ code: '40001' });
    expect(await backend(db)).toBe(pid);
  });

  it('discards it when the connection breaks, and the next caller gets a new one', async () => {
    const db = onePool(100);
    const pid = await backend(db);
    const running = db.query('SELECT pg_sleep(10)');
    running.catch(() => undefined);
    await waitUntilActive(pid);
    await other.query('SELECT pg_terminate_backend($1)', [pid]);
    await expect(running).rejects.toThrow();
    const next = await backend(db);
    expect(next).toBeDefined();
    expect(next).not.toBe(pid);
    expect(db.stats().total).toBe(1);
  });

  async function waitUntilBlocked(pid: number | undefined) {
    await waitFor(pid, `wait_event_type = 'Lock'`);
  }

  async function waitUntilActive(pid: number | undefined) {
    await waitFor(pid, `state = 'active'`);
  }

  async function waitFor(pid: number | undefined, condition: string) {
    for (let i = 0; i < 200; i++) {
      const r = await other.query(`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND ${condition}`, [pid]);
      if (r.rowCount) return;
      await sleep(10);
    }
    throw new Error(`backend ${pid} never got to ${condition}`);
  }
});
