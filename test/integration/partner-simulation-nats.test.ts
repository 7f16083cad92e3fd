/**
 * `orders partners simulate`'s function against a private nats-server, with the service's worker
 * publishing and consuming on it: an order is answered over NATS and confirms itself; the
 * simulator's durable consumer keeps its place, so an order placed while it was stopped is
 * answered by its next run; it stops cleanly on its signal. And SIMULATE_PARTNERS inside a worker
 * with NATS_URL publishes its answers to NATS rather than into the inbox.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInProcessSimulator, SIMULATOR_SOURCES } from '../../src/messaging/partner-simulator.js';
import { runNatsPartnerSimulator, SIMULATOR_CONSUMER } from '../../src/messaging/partner-simulator-nats.js';
import { sleep } from '../../src/platform/shutdown.js';
import type { Worker } from '../../src/worker/index.js';
import { postOrder, validOrder } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase, testLogger } from '../helpers/db.js';
import {
  NATS_SERVER_BIN,
  type NatsServer,
  NEEDS_NATS_SERVER,
  startNatsServer,
} from '../helpers/nats-server.js';
import { wireServe } from '../helpers/worker.js';

type Jsm = Awaited<ReturnType<typeof import('@nats-io/jetstream')['jetstreamManager']>>;

describe.skipIf(!NATS_SERVER_BIN)(`partner simulation over NATS (${NEEDS_NATS_SERVER})`, () => {
  let server: NatsServer;
  let url: string;
  let tdb: TestDatabase;
  let worker: Worker;
  let app: FastifyInstance;
  let nc: Awaited<ReturnType<typeof import('@nats-io/transport-node')['connect']>>;
  let jsm: Jsm;

  beforeAll(async () => {
    server = await startNatsServer();
    url = `nats://${server.hostPort}`;
    tdb = await createTestDatabase();
    ({ app, worker } = await wireServe(tdb.db, { env: { NATS_URL: url } }));
    await worker.start();
    const [{ connect }, { jetstreamManager }] = await Promise.all([
      import('@nats-io/transport-node'),
      import('@nats-io/jetstream'),
    ]);
    nc = await connect({ servers: url });
    jsm = await jetstreamManager(nc);
  });

  afterAll(async () => {
    await worker?.stop({ timeoutMs: 2_000 });
    await app?.close();
    await nc?.close();
    await tdb?.drop();
    await server?.stop();
  });

  function simulate(delayMs = 100) {
    const stop = new AbortController();
    let ready!: () => void;
    const bound = new Promise<void>((resolve) => {
      ready = resolve;
    });
    const done = runNatsPartnerSimulator({
      url,
      logger: testLogger,
      signal: stop.signal,
      delayMs,
      stockRejectRate: 0,
      paymentFailRate: 0,
      onReady: () => ready(),
    });
    return { stop: () => stop.abort(), bound, done };
  }

  /** The simulator consumer's ack_wait: its first run's delay (100 ms) gives the 30 s floor. */
  const ACK_WAIT_MS = 30_000;

  async function waitForStatus(id: string, status: string, timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const order = (await app.inject({ method: 'GET', url: `/orders/${id}` })).json();
      if (order.status === status) return order;
      if (Date.now() > deadline) throw new Error(`order ${id} is ${JSON.stringify(order)}, not ${status}`);
      await sleep(25);
    }
  }

  it('answers a new order over NATS and the worker applies the answers: it confirms itself', async () => {
    const simulator = simulate();
    await simulator.bound;
    const { id } = (await postOrder(app, validOrder())).json();
    const order = await waitForStatus(id, 'confirmed');
    expect(order).toMatchObject({ stock: 'reserved', payment: 'captured', version: 3 });
    const inbox = await tdb.db.query<{ source: string; subject: string }>(
      'SELECT source, subject FROM inbox_messages WHERE order_id = $1 ORDER BY subject',
      [id],
    );
    expect(inbox.rows).toEqual([
      { source: SIMULATOR_SOURCES.catalog, subject: 'catalog.events.StockReserved' },
      { source: SIMULATOR_SOURCES.payments, subject: 'payments.events.PaymentCaptured' },
    ]);
    // Its own durable consumer, explicit acks, on the stream that captures OrderCreated.
    const stream = await jsm.streams.find('orders.events.OrderCreated');
    expect(stream).toBe('ORDERS_EVENTS');
    expect((await jsm.streams.info(stream)).config.retention).toBe('limits');
    const consumer = await jsm.consumers.info(stream, SIMULATOR_CONSUMER);
    expect(consumer.config).toMatchObject({
      ack_policy: 'explicit',
      filter_subject: 'orders.events.OrderCreated',
    });
    simulator.stop();
    await simulator.done;
    // Everything it was given is acknowledged.
    expect((await jsm.consumers.info(stream, SIMULATOR_CONSUMER)).num_ack_pending).toBe(0);
  });

  it('an order placed while the simulator is stopped is answered by its next run', async () => {
    const { id } = (await postOrder(app, validOrder())).json();
    // Published, not answered: nobody plays the partners.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const info = await jsm.streams.info('ORDERS_EVENTS');
      const r = await tdb.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM outbox_events WHERE aggregate_id = $1 AND status = 'processed'`,
        [id],
      );
      if (r.rows[0]!.n === 1 && info.state.messages >= 2) break;
      await sleep(25);
    }
    expect((await app.inject({ method: 'GET', url: `/orders/${id}` })).json().status).toBe('pending');
    const simulator = simulate();
    try {
      await waitForStatus(id, 'confirmed');
    } finally {
      simulator.stop();
      await simulator.done;
    }
  });

  it('stops at once while answers are still waiting for their delay, and answers them on the next run', async () => {
    const simulator = simulate(60_000);
    await simulator.bound;
    const { id } = (await postOrder(app, validOrder())).json();
    // Let the simulator receive it, then stop it mid-delay.
    const deadline = Date.now() + 10_000;
    while (
      (await jsm.consumers.info('ORDERS_EVENTS', SIMULATOR_CONSUMER)).num_ack_pending === 0 &&
      Date.now() < deadline
    ) {
      await sleep(25);
    }
    const started = Date.now();
    simulator.stop();
    await simulator.done;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect((await app.inject({ method: 'GET', url: `/orders/${id}` })).json().status).toBe('pending');
    const next = simulate(0);
    try {
      // A message the simulator was holding is nak'd and comes back at once. The server counts it
      // pending from the moment it sends it, so the stop can also beat it to the simulator, which
      // then never sees it to nak it: the server redelivers it after the consumer's ack_wait
      // (30 s, set by the first run). Seen once under a loaded CI run; either way the next run
      // answers it.
      await waitForStatus(id, 'confirmed', ACK_WAIT_MS + 10_000);
    } finally {
      next.stop();
      await next.done;
    }
  });
});

describe.skipIf(!NATS_SERVER_BIN)(
  `SIMULATE_PARTNERS in a worker with NATS_URL (${NEEDS_NATS_SERVER})`,
  () => {
    it("publishes the answers to NATS, and the worker's own consumer applies them", async () => {
      const server = await startNatsServer();
      const url = `nats://${server.hostPort}`;
      const tdb = await createTestDatabase();
      const partners = createInProcessSimulator(
        { delayMs: 50, stockRejectRate: 0, paymentFailRate: 1 },
        { natsUrl: url, logger: testLogger, receive: () => Promise.reject(new Error('not used with NATS')) },
      );
      const { app, worker } = await wireServe(tdb.db, { env: { NATS_URL: url }, partners });
      await worker.start();
      try {
        const { id } = (await postOrder(app, validOrder())).json();
        const deadline = Date.now() + 20_000;
        let order = { status: 'pending' } as Record<string, unknown>;
        while (order.status === 'pending' && Date.now() < deadline) {
          await sleep(25);
          order = (await app.inject({ method: 'GET', url: `/orders/${id}` })).json();
        }
        expect(order).toMatchObject({
          status: 'cancelled',
          cancellationReason: 'payment_failed',
          payment: 'failed',
        });
        const inbox = await tdb.db.query<{ subject: string }>(
          'SELECT subject FROM inbox_messages WHERE order_id = $1 ORDER BY subject',
          [id],
        );
        expect(inbox.rows.map((r) => r.subject)).toContain('payments.events.PaymentFailed');
      } finally {
        await worker.stop({ timeoutMs: 2_000 });
        await partners.stop();
        await app.close();
        await tdb.drop();
        await server.stop();
      }
    });
  },
);
