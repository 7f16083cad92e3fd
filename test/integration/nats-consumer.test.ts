/**
 * Consuming Catalog's and Payments' events from a real nats-server (one of its own per test, so
 * the contract's subjects and streams are used as they are) into a real PostgreSQL: bindings,
 * both arrival orders, duplicates under new Nats-Msg-Ids, a poison message among good ones,
 * and 200 orders each confirmed exactly once.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createOrdersService } from '../../src/orders/service.js';
import { createMetrics, type Metrics } from '../../src/platform/metrics.js';
import { createWorker, type Worker, workerOptionsFromConfig } from '../../src/worker/index.js';
import type { WorkerOverrides } from '../../src/worker/options.js';
import { validOrder } from '../helpers/app.js';
import { createTestDatabase, NEEDS_SERVER, serverUrl, type TestDatabase, testLogger } from '../helpers/db.js';
import {
  confirmations,
  eventually,
  partnerClient,
  type RestartableNatsServer,
  restartableNatsServer,
} from '../helpers/nats-inbound.js';
import { NATS_SERVER_BIN, NEEDS_NATS_SERVER } from '../helpers/nats-server.js';

const SKIP = !NATS_SERVER_BIN || !serverUrl();

describe.skipIf(SKIP)(`consuming partner events from NATS (${NEEDS_NATS_SERVER}; ${NEEDS_SERVER})`, () => {
  let tdb: TestDatabase;
  let nats: RestartableNatsServer | undefined;
  let worker: Worker | undefined;
  let partners: Awaited<ReturnType<typeof partnerClient>> | undefined;
  let metrics: Metrics;

  beforeAll(async () => {
    tdb = await createTestDatabase({ poolMax: 20 });
  });
  afterAll(async () => {
    await tdb?.drop();
  });
  afterEach(async () => {
    await worker?.stop({ timeoutMs: 2_000 });
    await partners?.close();
    await nats?.destroy();
    worker = undefined;
    partners = undefined;
    nats = undefined;
  });

  /** A nats-server of the test's own, `before` run on it, then a worker consuming from it. */
  async function setUp(
    overrides: WorkerOverrides = {},
    before?: (p: Awaited<ReturnType<typeof partnerClient>>) => Promise<unknown>,
  ) {
    nats = await restartableNatsServer();
    const client = await partnerClient(nats.url);
    partners = client;
    await before?.(client);
    metrics = createMetrics({ defaultMetrics: false });
    const started = createWorker({
      db: tdb.db,
      logger: testLogger,
      metrics,
      publisher: null,
      options: workerOptionsFromConfig(loadConfig({ NATS_URL: nats.url }), {
        pollIntervalMs: 20,
        maxIdlePollIntervalMs: 50,
        housekeepingIntervalMs: 0,
        ...overrides,
      }),
    });
    worker = started;
    return { worker: started, partners: client };
  }

  async function createOrders(n: number, wake?: (id: string) => void) {
    const service = createOrdersService({ db: tdb.db, idempotencyTtlHours: 1, onEventCommitted: wake });
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const result = await service.create({ input: validOrder(), customerId: `c-${i % 7}` });
      if (result.kind !== 'created') throw new Error('not created');
      ids.push(result.order.id);
    }
    return ids;
  }

  async function inboundCount(type: string, outcome: string) {
    const metric = await metrics.inboundEvents.get();
    return metric.values.find((v) => v.labels.type === type && v.labels.outcome === outcome)?.value ?? 0;
  }

  it("creates the contract's streams and one durable `orders` consumer each, with explicit acks and a short ack wait", async () => {
    const { worker, partners } = await setUp();
    await worker.start();
    expect(await partners.waitForStream('catalog.events.StockReserved')).toBe('CATALOG_EVENTS');
    expect(await partners.waitForStream('payments.events.PaymentCaptured')).toBe('PAYMENTS_EVENTS');
    const consumer = await eventually(
      'the consumer',
      () => partners.jsm.consumers.info('PAYMENTS_EVENTS', 'orders').catch(() => undefined),
      (info) => info !== undefined,
    );
    expect(consumer?.config).toMatchObject({
      durable_name: 'orders',
      ack_policy: 'explicit',
      ack_wait: 15_000_000_000,
      max_deliver: -1,
    });
    const filters = consumer?.config.filter_subjects ?? [consumer?.config.filter_subject];
    // nats-server 2.10+ filters exactly our subjects; 2.9 the narrowest wildcard covering them.
    expect([
      ['payments.events.PaymentCaptured', 'payments.events.PaymentFailed'],
      ['payments.events.>'],
    ]).toContainEqual(filters);
    expect((await partners.jsm.streams.info('CATALOG_EVENTS')).config.subjects).toEqual(['catalog.events.>']);
  });

  it('binds to a stream that already captures the subjects instead of creating its own', async () => {
    const { worker, partners } = await setUp({}, (p) =>
      p.jsm.streams.add({ name: 'CATALOG', subjects: ['catalog.>'] }),
    );
    await worker.start();
    const [orderId] = await createOrders(1);
    expect(await partners.waitForStream('payments.events.PaymentCaptured')).toBe('PAYMENTS_EVENTS');
    await partners.publish('StockReserved', orderId!);
    await eventually(
      'stock reserved',
      () => stockOf(orderId!),
      (s) => s === 'reserved',
    );
    await expect(partners.jsm.streams.info('CATALOG_EVENTS')).rejects.toThrow(/stream not found/i);
    expect((await partners.jsm.consumers.info('CATALOG', 'orders')).config.durable_name).toBe('orders');
  });

  async function stockOf(orderId: string) {
    const r = await tdb.db.query<{ stock: string }>('SELECT stock FROM orders WHERE id = $1', [orderId]);
    return r.rows[0]?.stock;
  }

  for (const order of [
    ['StockReserved', 'PaymentCaptured'],
    ['PaymentCaptured', 'StockReserved'],
  ] as const) {
    it(`${order.join(' then ')} through NATS: confirmed once, one OrderConfirmed`, async () => {
      const { worker, partners } = await setUp();
      await worker.start();
      const [orderId] = await createOrders(1);
      await partners.waitForStream('payments.events.PaymentCaptured');
      await partners.waitForStream('catalog.events.StockReserved');
      await partners.publish(order[0], orderId!);
      await eventually(
        `${order[0]} applied`,
        () => tdb.db.query<{ version: number }>('SELECT version FROM orders WHERE id = $1', [orderId]),
        (r) => r.rows[0]?.version === 2,
      );
      await partners.publish(order[1], orderId!);
      const done = await eventually(
        'confirmed',
        () => confirmations(tdb.db, [orderId!]),
        (c) => c.confirmed === 1,
      );
      expect(done).toMatchObject({ confirmed: 1, versions: [3], events: 1, maxPerOrder: 1 });
      expect(await inboundCount(order[0], 'applied')).toBe(1);
      expect(await inboundCount(order[1], 'applied')).toBe(1);
    });
  }

  it('the same CloudEvent published again under another Nats-Msg-Id is applied once', async () => {
    const { worker, partners } = await setUp();
    await worker.start();
    const [orderId] = await createOrders(1);
    await partners.waitForStream('catalog.events.StockReserved');
    const id = await partners.publish('StockReserved', orderId!, { msgId: 'first' });
    await partners.publish('StockReserved', orderId!, { id, msgId: 'second' });
    await partners.publish('StockReserved', orderId!, { id, msgId: 'third' });
    await eventually(
      'three deliveries handled',
      () => inboundCount('StockReserved', 'duplicate'),
      (n) => n === 2,
    );
    expect(await inboundCount('StockReserved', 'applied')).toBe(1);
    const r = await tdb.db.query<{ version: number }>('SELECT version FROM orders WHERE id = $1', [orderId]);
    expect(r.rows[0]?.version).toBe(2);
    const inbox = await tdb.db.query('SELECT 1 FROM inbox_messages WHERE id = $1', [id]);
    expect(inbox.rowCount).toBe(1);
  });

  it('a poison message is recorded dead with its reason and acked; the messages behind it flow', async () => {
    const { worker, partners } = await setUp({ concurrency: 1 });
    await worker.start();
    const orderIds = await createOrders(3);
    await partners.waitForStream('catalog.events.StockReserved');
    await partners.waitForStream('payments.events.PaymentCaptured');
    await partners.publishRaw('catalog.events.StockReserved', '{"not": "a cloud event"', {
      'Nats-Msg-Id': 'poison',
    });
    await partners.publish('PaymentCaptured', orderIds[0]!, { data: { amount: 1 } });
    for (const orderId of orderIds) {
      await partners.publish('StockReserved', orderId);
      await partners.publish('PaymentCaptured', orderId);
    }
    const done = await eventually(
      'confirmed',
      () => confirmations(tdb.db, orderIds),
      (c) => c.confirmed === 3,
    );
    expect(done).toMatchObject({ events: 3, maxPerOrder: 1 });
    const dead = await tdb.db.query<{ reason: string; source: string }>(
      // By reason: the two poison messages arrive on two streams, consumed concurrently.
      `SELECT reason, source FROM inbox_messages WHERE status = 'dead' ORDER BY reason`,
    );
    expect(dead.rows.map((r) => r.reason)).toEqual([
      expect.stringMatching(/^amount_mismatch: captured 1 EUR/),
      expect.stringMatching(/^malformed_json: /),
    ]);
    expect(dead.rows[1]?.source).toBe('nats:catalog.events.StockReserved');
    // Acked: nothing waits for redelivery.
    await eventually(
      'all acked',
      async () => (await partners.jsm.consumers.info('CATALOG_EVENTS', 'orders')).num_ack_pending,
      (n) => n === 0,
    );
    expect((await partners.jsm.consumers.info('CATALOG_EVENTS', 'orders')).num_redelivered).toBe(0);
  });

  it('200 orders, their StockReserved and PaymentCaptured published through NATS: each confirmed exactly once', async () => {
    const { worker, partners } = await setUp();
    await worker.start();
    const orderIds = await createOrders(200, (id) => worker.wake(id));
    await partners.waitForStream('catalog.events.StockReserved');
    await partners.waitForStream('payments.events.PaymentCaptured');
    const started = Date.now();
    // Both partners answer every order, in either order, and Payments publishes a tenth twice.
    await Promise.all(
      orderIds.map(async (orderId, i) => {
        const first = i % 2 === 0 ? 'StockReserved' : 'PaymentCaptured';
        const second = first === 'StockReserved' ? 'PaymentCaptured' : 'StockReserved';
        await partners.publish(first, orderId);
        const id = await partners.publish(second, orderId);
        if (i % 10 === 0) await partners.publish(second, orderId, { id, msgId: `${id}-again` });
      }),
    );
    const done = await eventually(
      '200 confirmed',
      () => confirmations(tdb.db, orderIds),
      (c) => c.confirmed === 200,
      60_000,
    );
    const tookMs = Date.now() - started;
    expect(done).toEqual({ confirmed: 200, versions: [3], events: 200, maxPerOrder: 1 });
    await eventually(
      'duplicates seen',
      async () =>
        (await inboundCount('StockReserved', 'duplicate')) +
        (await inboundCount('PaymentCaptured', 'duplicate')),
      (n) => n === 20,
    );
    console.log(
      `[nats-consumer] 200 orders confirmed through NATS in ${tookMs} ms (${Math.round(200_000 / tookMs)} orders/s)`,
    );
  });
});
