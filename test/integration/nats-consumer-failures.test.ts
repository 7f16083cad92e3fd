/**
 * The consumer when things go wrong, on a nats-server of the test's own: a crash between commit
 * and ack (in-process: the handler commits, then the connection goes without an ack), NATS
 * restarted mid-stream, PostgreSQL down, the consumer or the stream deleted under it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { type ReceiveResult, receive } from '../../src/messaging/inbox.js';
import type { InboundMessage } from '../../src/messaging/inbox-message.js';
import { DatabaseUnavailableError, type Db } from '../../src/platform/db.js';
import { createMetrics } from '../../src/platform/metrics.js';
import { sleep } from '../../src/platform/shutdown.js';
import { createWorker, workerOptionsFromConfig } from '../../src/worker/index.js';
import { createTestDatabase, NEEDS_SERVER, serverUrl, type TestDatabase, testLogger } from '../helpers/db.js';
import { confirmations, consumerHarness, eventually } from '../helpers/nats-inbound.js';
import { NATS_SERVER_BIN, NEEDS_NATS_SERVER } from '../helpers/nats-server.js';

const SKIP = !NATS_SERVER_BIN || !serverUrl();

describe.skipIf(SKIP)(`the consumer under failure (${NEEDS_NATS_SERVER}; ${NEEDS_SERVER})`, () => {
  let tdb: TestDatabase;
  const h = consumerHarness(() => tdb.db);

  beforeAll(async () => {
    tdb = await createTestDatabase({ poolMax: 20 });
  });
  afterAll(async () => {
    await tdb?.drop();
  });
  afterEach(() => h.cleanup());

  it('a crash between commit and ack: the message is redelivered, found a duplicate, acked, applied once', async () => {
    await h.startNats();
    const [orderId] = await h.createOrders(1);
    const firstRun: ReceiveResult[] = [];
    // Commits, then "crashes": never acks, never naks; the connection then goes.
    const crashing = h.consumer(async (message) => {
      firstRun.push(await receive(tdb.db, message));
      await new Promise(() => undefined);
    });
    await h.partners.waitForStream('catalog.events.StockReserved');
    const id = await h.partners.publish('StockReserved', orderId!);
    await eventually(
      'committed',
      async () => firstRun.length,
      (n) => n === 1,
    );
    expect(firstRun[0]?.outcome).toBe('applied');
    const crashedAt = Date.now();
    await crashing.stop({ timeoutMs: 0 });

    const secondRun: { result: ReceiveResult; deliveryCount: number | undefined }[] = [];
    h.consumer(async (message: InboundMessage) => {
      secondRun.push({ result: await receive(tdb.db, message), deliveryCount: message.deliveryCount });
    });
    await eventually(
      'redelivered',
      async () => secondRun.length,
      (n) => n === 1,
      10_000,
    );
    // Within the ack wait (2 s here; 15 s by default) of the crash.
    expect(Date.now() - crashedAt).toBeLessThan(4_000);
    expect(secondRun[0]).toMatchObject({
      result: { outcome: 'duplicate', identity: { id } },
      deliveryCount: 2,
    });
    const r = await tdb.db.query<{ version: number }>('SELECT version FROM orders WHERE id = $1', [orderId]);
    expect(r.rows[0]?.version).toBe(2);
    await eventually(
      'acked',
      async () => (await h.partners.jsm.consumers.info('CATALOG_EVENTS', 'orders')).num_ack_pending,
      (n) => n === 0,
    );
    await sleep(2_500); // past another ack wait: nothing comes back
    expect(secondRun).toHaveLength(1);
  });

  it('NATS restarted mid-stream: consumption resumes and nothing is lost or applied twice', async () => {
    await h.startNats();
    const worker = h.worker();
    await worker.start();
    const orderIds = await h.createOrders(120);
    await h.partners.waitForStream('catalog.events.StockReserved');
    await h.partners.waitForStream('payments.events.PaymentCaptured');
    await h.answerAll(orderIds.slice(0, 80));
    await eventually(
      'some consumed',
      () => h.inboxRows(orderIds),
      (n) => n >= 10,
    );
    await h.nats.stop();
    await sleep(1_000);
    await h.nats.start();
    await h.answerAll(orderIds.slice(80));
    const done = await eventually(
      'all confirmed',
      () => confirmations(tdb.db, orderIds),
      (c) => c.confirmed === 120,
      30_000,
    );
    expect(done).toEqual({ confirmed: 120, versions: [3], events: 120, maxPerOrder: 1 });
    expect(await h.inboxRows(orderIds)).toBe(240);
  });

  it('PostgreSQL down: every delivery is nakked with backoff, nothing is lost; applied once it is back', async () => {
    await h.startNats();
    let down = true;
    const refused = () =>
      new DatabaseUnavailableError(
        Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
      );
    // The worker's database fails as an unreachable server does, until `down` is cleared.
    const flaky: Db = {
      query: (text, values, options) =>
        down ? Promise.reject(refused()) : tdb.db.query(text, values, options),
      transaction: (fn, options) => (down ? Promise.reject(refused()) : tdb.db.transaction(fn, options)),
      stats: () => tdb.db.stats(),
      close: async () => undefined,
    };
    const metrics = createMetrics({ defaultMetrics: false });
    const worker = createWorker({
      db: flaky,
      logger: testLogger,
      metrics,
      publisher: null,
      options: workerOptionsFromConfig(
        loadConfig({ NATS_URL: h.nats.url, WORKER_BACKOFF_BASE_MS: '50', WORKER_BACKOFF_MAX_MS: '200' }),
        { pollIntervalMs: 20, maxIdlePollIntervalMs: 50, housekeepingIntervalMs: 0 },
      ),
    });
    h.onCleanup(() => worker.stop({ timeoutMs: 2_000 }));
    const orderIds = await h.createOrders(5);
    await worker.start();
    await h.partners.waitForStream('catalog.events.StockReserved');
    await h.partners.waitForStream('payments.events.PaymentCaptured');
    await h.answerAll(orderIds);
    await eventually(
      'redeliveries',
      async () => (await h.partners.jsm.consumers.info('PAYMENTS_EVENTS', 'orders')).num_redelivered,
      (n) => n >= 3,
    );
    expect(await h.inboxRows(orderIds)).toBe(0);
    down = false;
    const done = await eventually(
      'confirmed',
      () => confirmations(tdb.db, orderIds),
      (c) => c.confirmed === 5,
    );
    expect(done).toEqual({ confirmed: 5, versions: [3], events: 5, maxPerOrder: 1 });
    expect(await h.inboxRows(orderIds)).toBe(10);
    const dead = await metrics.inboundEvents.get();
    expect(dead.values.filter((v) => v.labels.outcome === 'dead')).toEqual([]);
  });

  it('a deleted consumer, then a deleted stream, are created again and consumption goes on', async () => {
    await h.startNats();
    const worker = h.worker();
    await worker.start();
    const orderIds = await h.createOrders(3);
    await h.partners.waitForStream('catalog.events.StockReserved');
    await eventually(
      'bound',
      () => h.partners.jsm.consumers.info('CATALOG_EVENTS', 'orders').catch(() => undefined),
      (info) => info !== undefined,
    );
    await h.partners.jsm.consumers.delete('CATALOG_EVENTS', 'orders');
    await eventually(
      'the consumer recreated',
      () => h.partners.jsm.consumers.info('CATALOG_EVENTS', 'orders').catch(() => undefined),
      (info) => info !== undefined,
      30_000,
    );
    await h.partners.publish('StockReserved', orderIds[0]!);
    await eventually(
      'consumed after the consumer came back',
      () => h.inboxRows([orderIds[0]!]),
      (n) => n === 1,
    );

    await h.partners.jsm.streams.delete('CATALOG_EVENTS');
    await h.partners.waitForStream('catalog.events.StockReserved', 30_000);
    await eventually(
      'bound to the new stream',
      () => h.partners.jsm.consumers.info('CATALOG_EVENTS', 'orders').catch(() => undefined),
      (info) => info !== undefined,
      30_000,
    );
    await h.partners.publish('StockReserved', orderIds[1]!);
    await eventually(
      'consumed after the stream came back',
      () => h.inboxRows([orderIds[1]!]),
      (n) => n === 1,
      30_000,
    );
  });
});
