/**
 * Publishing to NATS JetStream (needs a NATS server with JetStream: NATS_URL). Each run uses its
 * own stream and subject prefix, so runs (and a real ORDERS_EVENTS stream) never collide.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { CLOUDEVENTS_CONTENT_TYPE, type CloudEvent } from '../../src/messaging/events.js';
import { createNatsPublisher, type EventPublisher } from '../../src/messaging/nats-publisher.js';
import type { OutboxEvent } from '../../src/messaging/outbox.js';
import { TransientError } from '../../src/platform/failures.js';
import { createMetrics } from '../../src/platform/metrics.js';
import { sleep } from '../../src/platform/shutdown.js';
import { createWorker, type Worker, workerOptionsFromConfig } from '../../src/worker/index.js';
import type { Notifier } from '../../src/worker/notifier.js';
import { createTestDatabase, type TestDatabase, testLogger } from '../helpers/db.js';

const NATS_URL = process.env.NATS_URL;
const NEEDS_NATS = 'needs a NATS server with JetStream (set NATS_URL, e.g. nats://127.0.0.1:4222)';

const run = randomBytes(4).toString('hex');
const stream = `ORDERS_EVENTS_TEST_${run}`;
const prefix = `test.${run}.orders.events`;

type Jsm = Awaited<ReturnType<typeof import('@nats-io/jetstream')['jetstreamManager']>>;

describe.skipIf(!NATS_URL)(`NATS JetStream publishing (${NEEDS_NATS})`, () => {
  let tdb: TestDatabase;
  let nc: Awaited<ReturnType<typeof import('@nats-io/transport-node')['connect']>>;
  let jsm: Jsm;
  let publisher: EventPublisher;

  beforeAll(async () => {
    const [{ connect }, { jetstreamManager }] = await Promise.all([
      import('@nats-io/transport-node'),
      import('@nats-io/jetstream'),
    ]);
    nc = await connect({ servers: NATS_URL!.split(',') });
    jsm = await jetstreamManager(nc);
    tdb = await createTestDatabase();
    publisher = createNatsPublisher({
      url: NATS_URL!,
      logger: testLogger,
      streamName: stream,
      subjectPrefix: prefix,
    });
  });

  afterAll(async () => {
    await publisher?.close();
    await jsm?.streams.delete(stream).catch(() => undefined);
    await nc?.close();
    await tdb?.drop();
  });

  const event = (id: string): OutboxEvent => ({
    id,
    type: 'OrderCreated',
    aggregateType: 'order',
    aggregateId: '0192f1c6-aaaa-7000-8000-000000000001',
    payload: { id: '0192f1c6-aaaa-7000-8000-000000000001', customerId: 'c-1' },
    traceContext: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
    attempts: 1,
    createdAt: new Date('2026-01-01T00:00:00Z'),
  });

  it('creates the stream when missing and stores an event published twice only once', async () => {
    const signal = new AbortController().signal;
    const id = '0192f1c6-0000-7000-8000-00000000a001';
    expect(await publisher.publish(event(id), { signal })).toEqual({ duplicate: false });
    expect(await publisher.publish(event(id), { signal })).toEqual({ duplicate: true });

    const info = await jsm.streams.info(stream);
    expect(info.config.subjects).toEqual([`${prefix}.>`]);
    expect(info.state.messages).toBe(1);
    const stored = await jsm.streams.getMessage(stream, { last_by_subj: `${prefix}.OrderCreated` });
    expect(stored?.header.get('Nats-Msg-Id')).toBe(id);
    expect(stored?.header.get('traceparent')).toBe('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    expect(stored?.header.get('Content-Type')).toBe(CLOUDEVENTS_CONTENT_TYPE);
    // The contract's envelope: CloudEvents 1.0, structured mode; `data` is the outbox payload.
    expect(stored?.json<CloudEvent>()).toEqual({
      specversion: '1.0',
      id,
      source: 'orders',
      type: 'OrderCreated',
      subject: '0192f1c6-aaaa-7000-8000-000000000001',
      time: '2026-01-01T00:00:00.000Z',
      datacontenttype: 'application/json',
      data: { id: '0192f1c6-aaaa-7000-8000-000000000001', customerId: 'c-1' },
    });
  });

  it('binds to a stream that already captures the subject instead of creating its own', async () => {
    const otherPrefix = `test.${run}.owned.orders.events`;
    const owned = `OPERATOR_OWNED_${run}`;
    const otherDefault = `ORDERS_EVENTS_UNUSED_${run}`;
    await jsm.streams.add({ name: owned, subjects: [`${otherPrefix}.OrderCreated`] });
    const bound = createNatsPublisher({
      url: NATS_URL!,
      logger: testLogger,
      streamName: otherDefault,
      subjectPrefix: otherPrefix,
    });
    try {
      const id = '0192f1c6-0000-7000-8000-00000000a003';
      await bound.publish(event(id), { signal: new AbortController().signal });
      expect((await jsm.streams.info(owned)).state.messages).toBe(1);
      await expect(jsm.streams.info(otherDefault)).rejects.toThrow(/stream not found/i);
    } finally {
      await bound.close();
      await jsm.streams.delete(owned).catch(() => undefined);
      await jsm.streams.delete(otherDefault).catch(() => undefined);
    }
  });

  it('the worker publishes each event before marking it processed; a retried event is stored once', async () => {
    await jsm.streams.purge(stream);
    // The first send of each notification fails after the publish succeeded: the retry
    // publishes the same event again, and JetStream drops the duplicate.
    const seen = new Set<string>();
    const notifier: Notifier = {
      async send(n) {
        if (!seen.has(n.eventId)) {
          seen.add(n.eventId);
          throw new TransientError('provider unavailable (test)');
        }
      },
    };
    const worker: Worker = createWorker({
      db: tdb.db,
      logger: testLogger,
      metrics: createMetrics({ defaultMetrics: false }),
      notifier,
      options: workerOptionsFromConfig(
        loadConfig({ NATS_URL: NATS_URL!, WORKER_BACKOFF_BASE_MS: '5', WORKER_BACKOFF_MAX_MS: '10' }),
        {
          natsStream: stream,
          natsSubjectPrefix: prefix,
          pollIntervalMs: 50,
          housekeepingIntervalMs: 0,
          // Publishing alone: this worker does not consume the partners' subjects on the shared server.
          inbound: { enabled: false },
        },
      ),
    });
    await worker.start();
    try {
      const inserted = await tdb.db.query<{ id: string }>(
        `INSERT INTO outbox_events (id, aggregate_type, aggregate_id, type, payload)
         SELECT gen_random_uuid(), 'order', o, 'OrderCreated', jsonb_build_object('id', o, 'customerId', 'c')
         FROM generate_series(1, 5), LATERAL (SELECT gen_random_uuid() AS o) x RETURNING id`,
      );
      const ids = inserted.rows.map((r) => r.id);
      for (const id of ids) worker.wake(id);
      const deadline = Date.now() + 10_000;
      for (;;) {
        const r = await tdb.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM outbox_events WHERE status = 'processed' AND attempts = 2`,
        );
        if (r.rows[0]!.n === 5) break;
        if (Date.now() > deadline) throw new Error('events were not processed in time');
        await sleep(20);
      }
      const info = await jsm.streams.info(stream);
      expect(info.state.messages).toBe(5);
      const stored = new Set<string>();
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(stream, { seq });
        stored.add(m!.header.get('Nats-Msg-Id'));
        expect(m!.subject).toBe(`${prefix}.OrderCreated`);
      }
      expect([...stored].sort()).toEqual([...ids].sort());
    } finally {
      await worker.stop({ timeoutMs: 2_000 });
    }
  });

  it('a publish failure is retried like any failure (NATS unreachable)', async () => {
    const unreachable = createNatsPublisher({
      url: 'nats://127.0.0.1:1',
      logger: testLogger,
      streamName: stream,
      subjectPrefix: prefix,
    });
    const error = await unreachable
      .publish(event('0192f1c6-0000-7000-8000-00000000a002'), { signal: new AbortController().signal })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransientError);
    expect((error as Error).message).toMatch(/cannot connect to NATS at nats:\/\/127\.0\.0\.1:1/);
    await unreachable.close();
  });
});
