import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, postOrder, validOrder } from '../helpers/app.js';
import { createTestDatabase, NEEDS_SERVER, serverUrl, type TestDatabase } from '../helpers/db.js';

let tdb: TestDatabase;
let app: FastifyInstance;

beforeAll(async () => {
  tdb = await createTestDatabase({ poolMax: 20 });
  ({ app } = await buildTestApp(tdb));
});

afterAll(async () => {
  await app?.close();
  await tdb?.drop();
});

let n = 0;
const uniqueKey = () => `key-${process.pid}-${Date.now()}-${n++}`;

const post = (body: unknown, key?: string) =>
  postOrder(app, body, key === undefined ? {} : { 'idempotency-key': key });

async function countOrders(customerId: string) {
  const r = await tdb.db.query<{ orders: number; events: number }>(
    `SELECT count(DISTINCT o.id)::int AS orders, count(e.id)::int AS events
     FROM orders o LEFT JOIN outbox_events e ON e.aggregate_id = o.id WHERE o.customer_id = $1`,
    [customerId],
  );
  return r.rows[0]!;
}

describe('Idempotency-Key', () => {
  it('replays the first response byte for byte, with status, Location and Idempotent-Replayed', async () => {
    const key = uniqueKey();
    const body = { ...validOrder(), customerId: `replay-${key}` };
    const first = await post(body, key);
    expect(first.statusCode).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const second = await post(body, `"${key}"`);
    expect(second.statusCode).toBe(201);
    expect(second.body).toBe(first.body);
    expect(second.headers.location).toBe(first.headers.location);
    expect(second.headers['content-type']).toBe(first.headers['content-type']);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(await countOrders(body.customerId)).toEqual({ orders: 1, events: 1 });
  });

  it('replays when the same body comes with its keys in another order', async () => {
    const key = uniqueKey();
    const customerId = `reorder-${key}`;
    const first = await post(
      `{"customerId":"${customerId}","currency":"EUR","items":[{"sku":"A","quantity":1,"unitPrice":5}]}`,
      key,
    );
    const second = await post(
      `{ "items": [ { "unitPrice": 5, "sku": "A", "quantity": 1 } ], "currency": "EUR", "customerId": "${customerId}" }`,
      key,
    );
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body).toBe(first.body);
    expect(await countOrders(customerId)).toEqual({ orders: 1, events: 1 });
  });

  it('answers 422 for the same key with a different request', async () => {
    const key = uniqueKey();
    expect((await post(validOrder(), key)).statusCode).toBe(201);
    const res = await post({ ...validOrder(), currency: 'USD' }, key);
    expect(res.statusCode).toBe(422);
    expect(res.json().code).toBe('idempotency_key_reused');
  });

  it('stores nothing for a request that failed validation: the key works with a corrected body', async () => {
    const key = uniqueKey();
    const bad = await post({ ...validOrder(), currency: 'euro' }, key);
    expect(bad.statusCode).toBe(400);
    const good = await post(validOrder(), key);
    expect(good.statusCode).toBe(201);
    expect(good.headers['idempotent-replayed']).toBeUndefined();
  });

  it('rejects malformed keys with 400 and stores nothing', async () => {
    for (const key of ['', 'has space', 'k'.repeat(256), '"unterminated']) {
      const res = await post(validOrder(), key);
      expect(res.statusCode, `key ${JSON.stringify(key)}`).toBe(400);
      expect(res.json().code).toBe('validation_failed');
    }
  });

  it('treats an expired key as new', async () => {
    const key = uniqueKey();
    const body = { ...validOrder(), customerId: `expired-${key}` };
    const first = await post(body, key);
    await tdb.db.query(
      `UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = $1`,
      [key],
    );
    const second = await post({ ...body, currency: 'USD' }, key);
    expect(second.statusCode).toBe(201);
    expect(second.headers['idempotent-replayed']).toBeUndefined();
    expect(second.json().id).not.toBe(first.json().id);
    const stored = await tdb.db.query(`SELECT count(*)::int AS n FROM idempotency_keys WHERE key = $1`, [
      key,
    ]);
    expect(stored.rows[0].n).toBe(1);
  });

  it('keeps the key with the order for IDEMPOTENCY_TTL_HOURS', async () => {
    const key = uniqueKey();
    await post(validOrder(), key);
    const r = await tdb.db.query<{ hours: number }>(
      `SELECT extract(epoch FROM expires_at - created_at) / 3600 AS hours FROM idempotency_keys WHERE key = $1`,
      [key],
    );
    expect(Number(r.rows[0]!.hours)).toBeCloseTo(24, 5);
  });

  it('lets exactly one of 50 identical concurrent requests create the order', async () => {
    const key = uniqueKey();
    const body = { ...validOrder(), customerId: `race-${key}` };
    const responses = await Promise.all(Array.from({ length: 50 }, () => post(body, key)));
    const created = responses.filter((r) => r.statusCode === 201 && !r.headers['idempotent-replayed']);
    const replayed = responses.filter(
      (r) => r.statusCode === 201 && r.headers['idempotent-replayed'] === 'true',
    );
    const conflicts = responses.filter((r) => r.statusCode === 409);
    expect(created).toHaveLength(1);
    expect(replayed.length + conflicts.length).toBe(49);
    for (const r of replayed) expect(r.body).toBe(created[0]!.body);
    for (const r of conflicts) expect(r.headers['retry-after']).toBeDefined();
    expect(await countOrders(body.customerId)).toEqual({ orders: 1, events: 1 });
  });

  describe.skipIf(!serverUrl())(
    `while the first request is in flight (${serverUrl() ? 'real server' : NEEDS_SERVER})`,
    () => {
      /** Makes every outbox insert in this database stall, so a create is caught mid-transaction. */
      async function stallOutboxInserts(seconds: number) {
        await tdb.db.query(`
        CREATE OR REPLACE FUNCTION test_stall() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN PERFORM pg_sleep(${seconds}); RETURN NEW; END $$;
        DROP TRIGGER IF EXISTS test_stall ON outbox_events;
        CREATE TRIGGER test_stall BEFORE INSERT ON outbox_events FOR EACH ROW EXECUTE FUNCTION test_stall();`);
      }
      async function unstall() {
        await tdb.db.query('DROP TRIGGER IF EXISTS test_stall ON outbox_events');
      }
      async function waitForStalledBackend(): Promise<number> {
        for (let i = 0; i < 100; i++) {
          const r = await tdb.db.query<{ pid: number }>(
            `SELECT pid FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event = 'PgSleep' AND pid <> pg_backend_pid()`,
          );
          if (r.rows[0]) return r.rows[0].pid;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        throw new Error('the stalled create never showed up in pg_stat_activity');
      }

      it('answers a second request with the same key 409 + Retry-After', async () => {
        const key = uniqueKey();
        const body = { ...validOrder(), customerId: `inflight-${key}` };
        await stallOutboxInserts(4);
        try {
          const first = post(body, key);
          await waitForStalledBackend();
          const second = await post(body, key);
          expect(second.statusCode).toBe(409);
          expect(second.json().code).toBe('idempotency_key_in_use');
          expect(Number(second.headers['retry-after'])).toBeGreaterThan(0);
          expect((await first).statusCode).toBe(201);
        } finally {
          await unstall();
        }
        const third = await post(body, key);
        expect(third.headers['idempotent-replayed']).toBe('true');
      });

      it('leaves the key free when the transaction is killed midway', async () => {
        const key = uniqueKey();
        const body = { ...validOrder(), customerId: `killed-${key}` };
        await stallOutboxInserts(30);
        let killed: Awaited<ReturnType<typeof post>>;
        try {
          const first = post(body, key);
          const pid = await waitForStalledBackend();
          await tdb.db.query('SELECT pg_terminate_backend($1)', [pid]);
          killed = await first;
        } finally {
          await unstall();
        }
        expect(killed.statusCode).toBe(503);
        expect(killed.json().code).toBe('unavailable');
        expect(await countOrders(body.customerId)).toEqual({ orders: 0, events: 0 });
        const keys = await tdb.db.query('SELECT count(*)::int AS n FROM idempotency_keys WHERE key = $1', [
          key,
        ]);
        expect(keys.rows[0].n).toBe(0);

        const retry = await post(body, key);
        expect(retry.statusCode).toBe(201);
        expect(retry.headers['idempotent-replayed']).toBeUndefined();
        expect(await countOrders(body.customerId)).toEqual({ orders: 1, events: 1 });
      });
    },
  );
});
