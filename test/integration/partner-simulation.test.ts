/**
 * The partner simulation in-process, as `npm ci && npx orders serve` runs it (no NATS): the
 * worker's OrderCreated handling schedules Catalog's and Payments' answers, which go through the
 * inbox like a consumed message; the order confirms itself (or is cancelled at reject rate 1),
 * and a second answer to the same order changes nothing. Runs on PostgreSQL or PGlite.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createInProcessSimulator,
  type PartnerSimulator,
  SIMULATOR_SOURCES,
} from '../../src/messaging/partner-simulator.js';
import { sleep } from '../../src/platform/shutdown.js';
import type { Worker } from '../../src/worker/index.js';
import { postOrder, validOrder } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase, testLogger } from '../helpers/db.js';
import { wireServe } from '../helpers/worker.js';

interface Running {
  app: FastifyInstance;
  worker: Worker;
  partners: PartnerSimulator;
}

describe('partner simulation without NATS (the embedded start)', () => {
  let tdb: TestDatabase;
  let running: Running | undefined;

  beforeAll(async () => {
    tdb = await createTestDatabase();
  });
  afterAll(async () => {
    await tdb?.drop();
  });
  afterEach(async () => {
    if (!running) return;
    await running.worker.stop({ timeoutMs: 2_000 });
    await running.partners.stop();
    await running.app.close();
    running = undefined;
  });

  /** serve's wiring: orders wake the worker, the worker's OrderCreated handler tells the simulator. */
  async function start(rates: { stockRejectRate: number; paymentFailRate: number }): Promise<Running> {
    const partners: PartnerSimulator = createInProcessSimulator(
      { delayMs: 100, ...rates },
      {
        natsUrl: undefined,
        logger: testLogger,
        receive: (message, options) => worker.receive(message, options),
      },
    );
    const { app, worker } = await wireServe(tdb.db, { partners, publisher: null });
    await worker.start();
    running = { app, worker, partners };
    return running;
  }

  async function waitForStatus(app: FastifyInstance, id: string, status: string) {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const order = (await app.inject({ method: 'GET', url: `/orders/${id}` })).json();
      if (order.status === status) return order;
      if (Date.now() > deadline) throw new Error(`order ${id} is ${JSON.stringify(order)}, not ${status}`);
      await sleep(25);
    }
  }

  async function inboxRows(orderId: string) {
    const r = await tdb.db.query<{ source: string; type: string; status: string }>(
      'SELECT source, type, status FROM inbox_messages WHERE order_id = $1 ORDER BY type',
      [orderId],
    );
    return r.rows;
  }

  async function outboxTypes(orderId: string) {
    const r = await tdb.db.query<{ type: string; status: string }>(
      'SELECT type, status FROM outbox_events WHERE aggregate_id = $1 ORDER BY created_at, type',
      [orderId],
    );
    return r.rows;
  }

  it('an order moves from pending to confirmed on its own, through the inbox', async () => {
    const { app } = await start({ stockRejectRate: 0, paymentFailRate: 0 });
    const created = await postOrder(app, validOrder());
    expect(created.statusCode).toBe(201);
    const { id, total } = created.json();
    expect(created.json()).toMatchObject({ status: 'pending', version: 1 });

    const confirmed = await waitForStatus(app, id, 'confirmed');
    expect(confirmed).toMatchObject({
      stock: 'reserved',
      payment: 'captured',
      version: 3,
      cancellationReason: null,
    });
    expect(await inboxRows(id)).toEqual([
      { source: SIMULATOR_SOURCES.payments, type: 'PaymentCaptured', status: 'processed' },
      { source: SIMULATOR_SOURCES.catalog, type: 'StockReserved', status: 'processed' },
    ]);
    const payment = await tdb.db.query<{ body: string }>(
      `SELECT body FROM inbox_messages WHERE order_id = $1 AND type = 'PaymentCaptured'`,
      [id],
    );
    expect(JSON.parse(payment.rows[0]!.body).data).toMatchObject({ amount: total, currency: 'EUR' });
    // OrderConfirmed is published once (and its customer notified, by the worker).
    const deadline = Date.now() + 10_000;
    while ((await outboxTypes(id)).some((e) => e.status !== 'processed') && Date.now() < deadline)
      await sleep(25);
    expect(await outboxTypes(id)).toEqual([
      { type: 'OrderCreated', status: 'processed' },
      { type: 'OrderConfirmed', status: 'processed' },
    ]);
  });

  it('answering the same order again changes nothing (the answers have the same ids)', async () => {
    const { app, partners } = await start({ stockRejectRate: 1, paymentFailRate: 1 });
    const created = await postOrder(app, validOrder());
    const order = await waitForStatus(app, created.json().id, 'cancelled');
    expect(order).toMatchObject({ cancellationReason: 'stock_rejected', stock: 'rejected' });
    // Wait for the payment answer too, then answer again (as a second OrderCreated handling would).
    const deadline = Date.now() + 10_000;
    while ((await inboxRows(order.id)).length < 2 && Date.now() < deadline) await sleep(25);
    const settled = (await app.inject({ method: 'GET', url: `/orders/${order.id}` })).json();
    expect(settled).toMatchObject({
      status: 'cancelled',
      payment: 'failed',
      cancellationReason: 'stock_rejected',
    });
    partners.orderCreated(order);
    await sleep(400);
    expect((await app.inject({ method: 'GET', url: `/orders/${order.id}` })).json()).toEqual(settled);
    expect(await inboxRows(order.id)).toHaveLength(2);
    expect((await outboxTypes(order.id)).map((e) => e.type)).toEqual(['OrderCreated', 'OrderCancelled']);
  });
});
