/**
 * For tests of consuming Catalog's and Payments' events: a nats-server that can be stopped and
 * started again on the same port and store (to restart NATS mid-stream), a client that
 * publishes the partners' CloudEvents, waits on the database, and a harness of all of it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.js';
import {
  CLOUDEVENTS_CONTENT_TYPE,
  CONSUMED_EVENTS,
  type ConsumedEventType,
} from '../../src/messaging/events.js';
import {
  createNatsConsumer,
  type InboundHandler,
  type NatsConsumer,
  type NatsConsumerOptions,
} from '../../src/messaging/nats-consumer.js';
import { createOrdersService } from '../../src/orders/service.js';
import type { Db, Queryable } from '../../src/platform/db.js';
import { createMetrics } from '../../src/platform/metrics.js';
import { sleep } from '../../src/platform/shutdown.js';
import { createWorker, type Worker, workerOptionsFromConfig } from '../../src/worker/index.js';
import type { WorkerOverrides } from '../../src/worker/options.js';
import { validOrder } from './app.js';
import { testLogger } from './db.js';
import { NATS_SERVER_BIN, NEEDS_NATS_SERVER } from './nats-server.js';
import { freePort } from './process.js';

export interface RestartableNatsServer {
  url: string;
  start(): Promise<void>;
  /** SIGTERM; the store stays for the next start. */
  stop(): Promise<void>;
  /** Stops it and removes its store. */
  destroy(): Promise<void>;
}

export async function restartableNatsServer(): Promise<RestartableNatsServer> {
  if (!NATS_SERVER_BIN) throw new Error(NEEDS_NATS_SERVER);
  const bin = NATS_SERVER_BIN;
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'orders-nats-inbound-'));
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  async function start() {
    const proc = spawn(bin, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    // A test file that ends abruptly (a timeout, a crash) must not leave its server behind.
    const killOnExit = () => proc.kill('SIGKILL');
    process.once('exit', killOnExit);
    proc.once('exit', () => process.off('exit', killOnExit));
    exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server did not start:\n${output}`)), 10_000);
      const onData = (chunk: Buffer) => {
        output += chunk;
        if (output.includes('Server is ready')) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stdout?.on('data', onData);
      proc.stderr?.on('data', onData);
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited at start:\n${output}`));
      });
    });
  }

  async function stop() {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  }

  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    start,
    stop,
    async destroy() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

type NatsModule = typeof import('@nats-io/transport-node');
type JsModule = typeof import('@nats-io/jetstream');

/** What Catalog and Payments would publish: CloudEvents on the contract's subjects. */
export async function partnerClient(url: string) {
  const [nats, jsModule] = await Promise.all([
    import('@nats-io/transport-node') as Promise<NatsModule>,
    import('@nats-io/jetstream') as Promise<JsModule>,
  ]);
  const nc = await nats.connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  const js = jsModule.jetstream(nc);
  const jsm = await jsModule.jetstreamManager(nc);

  /** Waits until a stream captures the subject (the consumer creates the contract's). */
  async function waitForStream(subject: string, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = await jsm.streams.find(subject).catch(() => undefined);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no stream captures ${subject}`);
      await sleep(50);
    }
  }

  /** Publishes raw bytes on a subject, with a Nats-Msg-Id of its own. */
  async function publishRaw(subject: string, body: string, headers: Record<string, string> = {}) {
    const h = nats.headers();
    h.set('Content-Type', CLOUDEVENTS_CONTENT_TYPE);
    for (const [k, v] of Object.entries(headers)) h.set(k, v);
    return js.publish(subject, body, { msgID: headers['Nats-Msg-Id'] ?? randomUUID(), headers: h });
  }

  /** Publishes one partner event; returns its CloudEvent id. */
  async function publish(
    type: ConsumedEventType,
    orderId: string,
    options: { id?: string; msgId?: string; data?: Record<string, unknown> } = {},
  ) {
    const id = options.id ?? randomUUID();
    const body = JSON.stringify(cloudEvent(type, orderId, id, options.data));
    await publishRaw(CONSUMED_EVENTS[type].subject, body, { 'Nats-Msg-Id': options.msgId ?? id });
    return id;
  }

  return { nc, js, jsm, waitForStream, publish, publishRaw, close: () => nc.close() };
}

export function cloudEvent(
  type: ConsumedEventType,
  orderId: string,
  id: string,
  extra: Record<string, unknown> = {},
) {
  const data: Record<string, unknown> = { orderId };
  if (type === 'PaymentCaptured')
    Object.assign(data, { paymentId: `p-${orderId}`, amount: 4498, currency: 'EUR' });
  if (type === 'PaymentFailed') Object.assign(data, { paymentId: `p-${orderId}`, reason: 'declined' });
  if (type === 'StockRejected') Object.assign(data, { reason: 'out of stock' });
  return {
    specversion: '1.0',
    id,
    source: type.startsWith('Stock') ? 'catalog' : 'payments',
    type,
    subject: orderId,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    data: { ...data, ...extra },
  };
}

/** Polls until `check` holds (or throws with `what` after the timeout). */
export async function eventually<T>(
  what: string,
  read: () => Promise<T>,
  check: (value: T) => boolean,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`${what}: still ${JSON.stringify(value)} after ${timeoutMs} ms`);
    await sleep(25);
  }
}

/** Orders by status, and OrderConfirmed outbox rows per order. */
export async function confirmations(db: Queryable, orderIds: readonly string[]) {
  const r = await db.query<{ confirmed: number; versions: number[]; events: number; maxPerOrder: number }>(
    `SELECT (SELECT count(*)::int FROM orders WHERE id = ANY($1) AND status = 'confirmed') AS confirmed,
            (SELECT array_agg(DISTINCT version::integer) FROM orders WHERE id = ANY($1)) AS versions,
            (SELECT count(*)::int FROM outbox_events WHERE aggregate_id = ANY($1) AND type = 'OrderConfirmed') AS events,
            (SELECT COALESCE(max(n), 0)::int FROM (SELECT count(*) AS n FROM outbox_events
               WHERE aggregate_id = ANY($1) AND type = 'OrderConfirmed' GROUP BY aggregate_id) x) AS "maxPerOrder"`,
    [orderIds],
  );
  return r.rows[0]!;
}

export type Partners = Awaited<ReturnType<typeof partnerClient>>;

/**
 * What the consumer's failure tests share: a nats-server of the test's own with the partners'
 * client, consumers and workers on it, orders on `db`; `cleanup()` (afterEach) ends them all.
 */
export function consumerHarness(db: () => Db) {
  const cleanups: (() => Promise<unknown>)[] = [];
  let nats: RestartableNatsServer | undefined;
  let partners: Partners | undefined;
  const started = <T>(value: T | undefined, what: string): T => {
    if (!value) throw new Error(`${what}: call startNats() first`);
    return value;
  };

  return {
    get nats() {
      return started(nats, 'nats');
    },
    get partners() {
      return started(partners, 'partners');
    },
    async startNats() {
      const server = await restartableNatsServer();
      nats = server;
      partners = await partnerClient(server.url);
      const client = partners;
      cleanups.push(
        () => server.destroy(),
        () => client.close(),
      );
    },
    /** A bare consumer (2 at once, a 2 s ack wait, redeliveries after 100 ms), started. */
    consumer(handle: InboundHandler, overrides: Partial<NatsConsumerOptions> = {}): NatsConsumer {
      const c = createNatsConsumer({
        url: started(nats, 'nats').url,
        logger: testLogger,
        handle,
        concurrency: 2,
        retryDelay: () => 100,
        ackWaitMs: 2_000,
        ...overrides,
      });
      cleanups.push(() => c.stop({ timeoutMs: 500 }));
      c.start();
      return c;
    },
    /** A worker consuming from the test's NATS with a 2 s ack wait (not started). */
    worker(options: { db?: Db; env?: Record<string, string>; overrides?: WorkerOverrides } = {}): Worker {
      const worker = createWorker({
        db: options.db ?? db(),
        logger: testLogger,
        metrics: createMetrics({ defaultMetrics: false }),
        publisher: null,
        options: workerOptionsFromConfig(
          loadConfig({ NATS_URL: started(nats, 'nats').url, ...options.env }),
          {
            pollIntervalMs: 20,
            maxIdlePollIntervalMs: 50,
            housekeepingIntervalMs: 0,
            inbound: { ackWaitMs: 2_000 },
            ...options.overrides,
          },
        ),
      });
      cleanups.push(() => worker.stop({ timeoutMs: 2_000 }));
      return worker;
    },
    async createOrders(n: number) {
      const service = createOrdersService({ db: db(), idempotencyTtlHours: 1 });
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        const result = await service.create({ input: validOrder(), customerId: 'c-1' });
        if (result.kind === 'created') ids.push(result.order.id);
      }
      return ids;
    },
    /** Both answers for every order, retrying while the partners' connection is re-established. */
    async answerAll(orderIds: readonly string[]) {
      const client = started(partners, 'partners');
      for (const orderId of orderIds) {
        for (const type of ['StockReserved', 'PaymentCaptured'] as const) {
          for (let attempt = 0; ; attempt++) {
            try {
              await client.publish(type, orderId, { id: `${type}-${orderId}` });
              break;
            } catch (error) {
              if (attempt > 100) throw error;
              await sleep(100);
            }
          }
        }
      }
    },
    /** Processed inbox rows of these orders. */
    async inboxRows(orderIds: readonly string[]) {
      const r = await db().query<{ n: number }>(
        `SELECT count(*)::int AS n FROM inbox_messages WHERE order_id = ANY($1) AND status = 'processed'`,
        [orderIds],
      );
      return r.rows[0]!.n;
    },
    onCleanup(fn: () => Promise<unknown>) {
      cleanups.push(fn);
    },
    async cleanup() {
      for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
    },
  };
}
