/**
 * The inbox on the database, without a transport: consumed events applied exactly once (both
 * arrival orders, duplicates under new ids of transport, concurrent duplicates), every
 * permanent failure recorded dead with its reason and nothing changed, `retry` from the stored
 * message, and the metrics. (What operators see of it: inbox-admin.test.ts.)
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { receive, retry } from '../../src/messaging/inbox.js';
import type { InboundMessage } from '../../src/messaging/inbox-message.js';
import { createMetrics, type Metrics } from '../../src/platform/metrics.js';
import { createTestDatabase, NEEDS_SERVER, serverUrl, type TestDatabase } from '../helpers/db.js';
import { createOrder, event, SUBJECTS } from '../helpers/inbox.js';

let tdb: TestDatabase;
let metrics: Metrics;
let woken: string[];

beforeAll(async () => {
  tdb = await createTestDatabase();
});

afterAll(async () => {
  await tdb?.drop();
});

beforeEach(() => {
  metrics = createMetrics({ defaultMetrics: false });
  woken = [];
});

const deliver = (message: InboundMessage) =>
  receive(tdb.db, message, { metrics, onEventCommitted: (id) => woken.push(id) });

async function orderRow(id: string) {
  const r = await tdb.db.query<{ status: string; version: number; stock: string; payment: string }>(
    'SELECT status, version, stock, payment FROM orders WHERE id = $1',
    [id],
  );
  return r.rows[0];
}

async function outboxTypes(orderId: string) {
  const r = await tdb.db.query<{ type: string }>(
    'SELECT type FROM outbox_events WHERE aggregate_id = $1 ORDER BY created_at, id',
    [orderId],
  );
  return r.rows.map((row) => row.type);
}

async function inboxRow(source: string, id: string) {
  const r = await tdb.db.query<{
    status: string;
    reason: string | null;
    type: string;
    order_id: string | null;
  }>('SELECT status, reason, type, order_id FROM inbox_messages WHERE source = $1 AND id = $2', [source, id]);
  return r.rows[0];
}

async function counter(type: string, outcome: string) {
  const metric = await metrics.inboundEvents.get();
  return metric.values.find((v) => v.labels.type === type && v.labels.outcome === outcome)?.value ?? 0;
}

describe('applying consumed events', () => {
  for (const order of [
    ['StockReserved', 'PaymentCaptured'],
    ['PaymentCaptured', 'StockReserved'],
  ] as const) {
    it(`${order.join(' then ')}: confirmed once, one OrderConfirmed, woken after commit`, async () => {
      const o = await createOrder(tdb.db);
      const first = await deliver(event(order[0], o.id));
      expect(first.outcome).toBe('applied');
      expect(first.eventIds).toEqual([]);
      const second = await deliver(event(order[1], o.id));
      expect(second.outcome).toBe('applied');
      expect(second.eventIds).toHaveLength(1);
      expect(woken).toEqual(second.eventIds);
      expect(await orderRow(o.id)).toEqual({
        status: 'confirmed',
        version: 3,
        stock: 'reserved',
        payment: 'captured',
      });
      expect(await outboxTypes(o.id)).toEqual(['OrderCreated', 'OrderConfirmed']);
      const transitions = await metrics.statusTransitions.get();
      expect(transitions.values).toEqual([
        expect.objectContaining({ labels: { from: 'pending', to: 'confirmed' }, value: 1 }),
      ]);
    });
  }

  it('a second delivery of the same CloudEvent (another Nats-Msg-Id) is a duplicate: nothing changes', async () => {
    const o = await createOrder(tdb.db);
    const message = event('StockReserved', o.id);
    expect((await deliver(message)).outcome).toBe('applied');
    const again = { ...message, headers: { ...message.headers, 'Nats-Msg-Id': randomUUID() } };
    expect((await deliver(again)).outcome).toBe('duplicate');
    expect((await orderRow(o.id))?.version).toBe(2);
    expect(await counter('StockReserved', 'applied')).toBe(1);
    expect(await counter('StockReserved', 'duplicate')).toBe(1);
  });

  it.skipIf(!serverUrl())(`concurrent deliveries of one event apply it once (${NEEDS_SERVER})`, async () => {
    const o = await createOrder(tdb.db);
    const message = event('PaymentCaptured', o.id);
    const results = await Promise.all(Array.from({ length: 8 }, () => deliver(message)));
    expect(results.filter((r) => r.outcome === 'applied')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'duplicate')).toHaveLength(7);
    expect((await orderRow(o.id))?.version).toBe(2);
  });

  it('a distinct but late event changes nothing and is recorded as consumed (unchanged)', async () => {
    const o = await createOrder(tdb.db);
    await deliver(event('StockRejected', o.id));
    expect((await orderRow(o.id))?.status).toBe('cancelled');
    const late = event('StockReserved', o.id);
    expect((await deliver(late)).outcome).toBe('unchanged');
    expect(await inboxRow('catalog', JSON.parse(late.body as string).id)).toMatchObject({
      status: 'processed',
    });
    expect(await outboxTypes(o.id)).toEqual(['OrderCreated', 'OrderCancelled']);
  });

  it('carries the partner trace context to the events the change publishes', async () => {
    const o = await createOrder(tdb.db);
    await deliver(event('StockReserved', o.id));
    const message = event('PaymentCaptured', o.id);
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    await deliver({ ...message, headers: { ...message.headers, traceparent } });
    const r = await tdb.db.query<{ trace_context: { traceparent?: string } | null }>(
      `SELECT trace_context FROM outbox_events WHERE aggregate_id = $1 AND type = 'OrderConfirmed'`,
      [o.id],
    );
    expect(r.rows[0]?.trace_context?.traceparent).toBe(traceparent);
  });
});

describe('permanent failures: dead, with the reason, nothing changed', () => {
  const cases: [string, (orderId: string) => InboundMessage, RegExp][] = [
    [
      'malformed JSON',
      (id) => ({ ...event('StockReserved', id), body: '{"specversion": "1.0", ' }),
      /^malformed_json: /,
    ],
    [
      'a malformed envelope',
      (id) => event('StockReserved', id, { envelope: { specversion: '0.3' } }),
      /^malformed_envelope: specversion/,
    ],
    ['no id', (id) => event('StockReserved', id, { envelope: { id: undefined } }), /^missing_id: /],
    [
      'a type its subject does not carry',
      (id) => ({ ...event('StockReserved', id), subject: SUBJECTS.StockRejected }),
      /^type_mismatch: the envelope's type "StockReserved" is not StockRejected/,
    ],
    [
      'an unknown subject',
      (id) => ({ ...event('StockReserved', id), subject: 'catalog.events.PriceChanged' }),
      /^unknown_type: /,
    ],
    [
      'data against the schema',
      (id) => event('PaymentCaptured', id, { data: { amount: '4498' } }),
      /^invalid_data: amount/,
    ],
    ['an unknown order', () => event('StockReserved', randomUUID()), /^unknown_order: no order with id /],
    [
      'a payment of another amount',
      (id) => event('PaymentCaptured', id, { data: { amount: 1 } }),
      /^amount_mismatch: captured 1 EUR, but the order's total is 4498 EUR/,
    ],
    [
      'a payment in another currency',
      (id) => event('PaymentCaptured', id, { data: { currency: 'USD' } }),
      /^amount_mismatch: captured 4498 USD/,
    ],
  ];
  for (const [name, make, reason] of cases) {
    it(name, async () => {
      const o = await createOrder(tdb.db);
      const message = make(o.id);
      const result = await deliver(message);
      expect(result.outcome).toBe('dead');
      expect(result.reason).toMatch(reason);
      expect(await orderRow(o.id)).toMatchObject({ version: 1, status: 'pending' });
      const row = await inboxRow(result.identity.source, result.identity.id);
      expect(row).toMatchObject({ status: 'dead' });
      expect(row?.reason).toMatch(reason);
      // A redelivery of the same message keeps the first record and counts as a duplicate.
      expect((await deliver(message)).outcome).toBe('duplicate');
    });
  }

  it('a message without an id gets one from its bytes: a redelivery is the same id', async () => {
    const o = await createOrder(tdb.db);
    const message = event('StockReserved', o.id, { envelope: { id: undefined } });
    const first = await deliver(message);
    const again = await deliver({ ...message, body: Buffer.from(message.body as string) });
    expect(first.identity.id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(again.identity).toEqual(first.identity);
    expect(again.outcome).toBe('duplicate');
  });

  it('stores a body with NUL characters and invalid UTF-8 as text', async () => {
    const bytes = Buffer.concat([Buffer.from('{"x":"\u0000"'), Buffer.from([0xff, 0xfe])]);
    const result = await deliver({ subject: SUBJECTS.StockReserved, body: bytes, headers: { a: 'b\u0000' } });
    expect(result.outcome).toBe('dead');
    expect(result.identity.source).toBe(`nats:${SUBJECTS.StockReserved}`);
  });
});

describe('retry', () => {
  it('applies a dead event once its cause is gone (the order now exists), and says so', async () => {
    const orderId = randomUUID();
    const message = event('StockReserved', orderId);
    const dead = await deliver(message);
    expect(dead.reason).toMatch(/^unknown_order/);
    // Still unknown: it stays dead, with the latest reason.
    expect(await retry(tdb.db, [dead.identity.id])).toMatchObject({
      applied: 0,
      stillDead: [{ id: dead.identity.id }],
    });
    await tdb.db.query(
      `INSERT INTO orders (id, customer_id, currency, total, created_at) VALUES ($1, 'c-1', 'EUR', 4498, now())`,
      [orderId],
    );
    const result = await retry(tdb.db, [dead.identity.id, 'no-such-id'], { metrics });
    expect(result).toEqual({ applied: 1, stillDead: [], notDead: ['no-such-id'] });
    expect(await inboxRow('catalog', dead.identity.id)).toMatchObject({ status: 'processed', reason: null });
    expect((await orderRow(orderId))?.stock).toBe('reserved');
    expect(await counter('StockReserved', 'retried')).toBe(1);
    // Processed now: a redelivery is a duplicate, a second retry finds nothing dead.
    expect((await deliver(message)).outcome).toBe('duplicate');
    expect(await retry(tdb.db, [dead.identity.id])).toEqual({
      applied: 0,
      stillDead: [],
      notDead: [dead.identity.id],
    });
  });
});
