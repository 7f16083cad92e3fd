/**
 * Transitions under concurrency, on a real server: concurrent cancels of one order make exactly
 * one change; If-Match races give one 200 and the rest 412; cancel and ship racing serialise. And
 * the transaction helper: a failed or abandoned transaction never returns its connection to the
 * pool inside an aborted transaction, nor leaves its row locks behind.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transitionOrder } from '../../src/orders/transitions.js';
import { buildTestApp, postOrder, validOrder } from '../helpers/app.js';
import { createTestDatabase, NEEDS_SERVER, serverUrl, type TestDatabase } from '../helpers/db.js';

let tdb: TestDatabase;
let app: FastifyInstance;

beforeAll(async () => {
  tdb = await createTestDatabase();
  ({ app } = await buildTestApp(tdb));
});

afterAll(async () => {
  await app?.close();
  await tdb?.drop();
});

async function createOrder() {
  const res = await postOrder(app, validOrder());
  expect(res.statusCode).toBe(201);
  return res.json() as { id: string; version: number };
}

const command = (id: string, kind: 'cancel' | 'ship', headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url: `/orders/${id}/${kind}`, headers });

const get = (id: string) => app.inject({ method: 'GET', url: `/orders/${id}` });

async function confirm(orderId: string) {
  for (const kind of ['StockReserved', 'PaymentCaptured'] as const) {
    const result = await tdb.db.transaction((tx) =>
      transitionOrder(tx, { orderId, input: { kind }, visibleTo: { customerId: null } }),
    );
    expect(result.outcome).toBe('changed');
  }
}

async function outboxTypes(orderId: string) {
  const rows = await tdb.db.query<{ type: string }>(
    'SELECT type FROM outbox_events WHERE aggregate_id = $1 ORDER BY created_at, id',
    [orderId],
  );
  return rows.rows.map((r) => r.type);
}

describe('transactions', () => {
  it('a failed transaction rolls back and its connection serves the next caller clean', async () => {
    const order = await createOrder();
    await expect(
      tdb.db.transaction(async (tx) => {
        await tx.query('UPDATE orders SET version = 99 WHERE id = $1', [order.id]);
        await tx.query('SELECT 1/0');
      }),
    ).rejects.toThrow(/division by zero/);
    // Every pooled connection answers (none is stuck in an aborted transaction), and nothing leaked.
    const answers = await Promise.all(
      Array.from({ length: 12 }, () =>
        tdb.db.query<{ v: number }>('SELECT version AS v FROM orders WHERE id = $1', [order.id]),
      ),
    );
    expect(answers.map((a) => a.rows[0]!.v)).toEqual(Array(12).fill(1));
  });
});

describe.skipIf(!serverUrl())(`races (${serverUrl() ? 'real server' : NEEDS_SERVER})`, () => {
  it('an abandoned transaction (its signal fired) takes its connection and its row locks with it', async () => {
    const order = await createOrder();
    const controller = new AbortController();
    const abandoned = tdb.db.transaction(
      async (tx) => {
        await tx.query('SELECT id FROM orders WHERE id = $1 FOR UPDATE', [order.id]);
        setTimeout(() => controller.abort(new Error('gone')), 20);
        await tx.query('SELECT pg_sleep(5)');
      },
      { signal: controller.signal },
    );
    await expect(abandoned).rejects.toThrow('gone');
    const started = performance.now();
    const res = await command(order.id, 'cancel');
    expect(res.statusCode).toBe(200);
    expect(performance.now() - started).toBeLessThan(1_500);
  });

  it('concurrent cancels of one order make exactly one change: version 2, one OrderCancelled', async () => {
    const order = await createOrder();
    const answers = await Promise.all(Array.from({ length: 12 }, () => command(order.id, 'cancel')));
    expect(answers.map((a) => a.statusCode)).toEqual(Array(12).fill(200));
    for (const answer of answers) expect(answer.json()).toMatchObject({ status: 'cancelled', version: 2 });
    expect((await outboxTypes(order.id)).filter((type) => type === 'OrderCancelled')).toHaveLength(1);
    expect((await get(order.id)).json().version).toBe(2);
  });

  it('If-Match races: N concurrent cancels with If-Match "1" → one 200, the rest 412', async () => {
    const order = await createOrder();
    const answers = await Promise.all(
      Array.from({ length: 12 }, () => command(order.id, 'cancel', { 'if-match': '"1"' })),
    );
    const statuses = answers.map((a) => a.statusCode).sort();
    expect(statuses).toEqual([200, ...Array(11).fill(412)]);
    expect((await outboxTypes(order.id)).filter((type) => type === 'OrderCancelled')).toHaveLength(1);
  });

  it('cancel and ship racing on a confirmed order: one wins, the other sees its result', async () => {
    const order = await createOrder();
    await confirm(order.id);
    const confirmedAt = Date.parse((await get(order.id)).json().updatedAt);
    const [cancel, ship] = await Promise.all([command(order.id, 'cancel'), command(order.id, 'ship')]);
    const final = (await get(order.id)).json();
    expect(final.version).toBe(4);
    expect(Date.parse(final.updatedAt)).toBeGreaterThanOrEqual(confirmedAt);
    if (final.status === 'cancelled') {
      expect(cancel!.statusCode).toBe(200);
      expect(ship!.statusCode).toBe(409);
    } else {
      expect(final.status).toBe('shipped');
      expect(ship!.statusCode).toBe(200);
      expect(cancel!.statusCode).toBe(409);
    }
    expect(await outboxTypes(order.id)).toHaveLength(3);
  });
});
