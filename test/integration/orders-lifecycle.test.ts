/**
 * The order's lifecycle over HTTP: the body's lifecycle fields, ETag / If-None-Match → 304,
 * cancel and ship (every cell the contract names, idempotent repeats, 409, 412 before 409), one
 * transaction per transition (the change and its outbox events together), the transitions
 * counter. The races are in orders-concurrency.test.ts.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transitionOrder } from '../../src/orders/transitions.js';
import type { Metrics } from '../../src/platform/metrics.js';
import { buildTestApp, postOrder, validOrder } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let tdb: TestDatabase;
let app: FastifyInstance;
let metrics: Metrics;
let committedEvents: string[];

beforeAll(async () => {
  tdb = await createTestDatabase();
  ({ app, metrics, committedEvents } = await buildTestApp(tdb));
});

afterAll(async () => {
  await app?.close();
  await tdb?.drop();
});

async function createOrder(headers: Record<string, string> = {}) {
  const res = await postOrder(app, validOrder(), headers);
  expect(res.statusCode).toBe(201);
  return res.json() as { id: string; version: number; [key: string]: unknown };
}

const command = (
  id: string,
  kind: 'cancel' | 'ship',
  options: { headers?: Record<string, string>; payload?: string } = {},
) =>
  app.inject({
    method: 'POST',
    url: `/orders/${id}/${kind}`,
    headers: options.headers ?? {},
    ...(options.payload === undefined ? {} : { payload: options.payload }),
  });

const get = (id: string, headers: Record<string, string> = {}) =>
  app.inject({ method: 'GET', url: `/orders/${id}`, headers });

/** Confirms an order the way consumed events do: StockReserved, then PaymentCaptured. */
async function confirm(orderId: string) {
  for (const kind of ['StockReserved', 'PaymentCaptured'] as const) {
    const result = await tdb.db.transaction((tx) =>
      transitionOrder(tx, { orderId, input: { kind }, visibleTo: { customerId: null } }),
    );
    expect(result.outcome).toBe('changed');
  }
}

async function outboxOf(orderId: string) {
  const rows = await tdb.db.query<{ id: string; type: string; payload: unknown }>(
    'SELECT id, type, payload FROM outbox_events WHERE aggregate_id = $1 ORDER BY created_at, id',
    [orderId],
  );
  return rows.rows;
}

async function transitions(from: string, to: string): Promise<number> {
  const metric = await metrics.statusTransitions.get();
  return metric.values.find((v) => v.labels.from === from && v.labels.to === to)?.value ?? 0;
}

function expectProblem(res: { statusCode: number; body: string }, status: number, code: string) {
  expect(res.statusCode, res.body).toBe(status);
  expect(JSON.parse(res.body)).toMatchObject({ status, code });
}

describe('the order body and its ETag', () => {
  it('201 carries version 1, updatedAt = createdAt, pending stock and payment, ETag "1"; GET and the event agree', async () => {
    const res = await postOrder(app, validOrder());
    expect(res.statusCode).toBe(201);
    const order = res.json();
    expect(order).toMatchObject({
      status: 'pending',
      version: 1,
      updatedAt: order.createdAt,
      stock: 'pending',
      payment: 'pending',
      cancellationReason: null,
    });
    expect(Object.keys(order)).toEqual([
      'id',
      'customerId',
      'status',
      'currency',
      'items',
      'total',
      'createdAt',
      'version',
      'updatedAt',
      'stock',
      'payment',
      'cancellationReason',
    ]);
    expect(res.headers.etag).toBe('"1"');
    const read = await get(order.id);
    expect(read.statusCode).toBe(200);
    expect(read.headers.etag).toBe('"1"');
    expect(read.body).toBe(res.body);
    const [created] = await outboxOf(order.id);
    expect(created).toMatchObject({ type: 'OrderCreated', payload: order });
  });

  it('a replayed create carries the ETag too', async () => {
    const headers = { 'idempotency-key': `etag-${Date.now()}` };
    const first = await postOrder(app, validOrder(), headers);
    const again = await postOrder(app, validOrder(), headers);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.headers.etag).toBe('"1"');
    expect(again.body).toBe(first.body);
  });

  it('If-None-Match with the current ETag (or *, or weak) → 304 with no body; otherwise 200', async () => {
    const order = await createOrder();
    for (const tag of ['"1"', 'W/"1"', '*', '"7", "1"']) {
      const res = await get(order.id, { 'if-none-match': tag });
      expect(res.statusCode, tag).toBe(304);
      expect(res.body).toBe('');
      expect(res.headers.etag).toBe('"1"');
    }
    for (const tag of ['"2"', 'W/"2"', 'garbage', '1']) {
      const res = await get(order.id, { 'if-none-match': tag });
      expect(res.statusCode, tag).toBe(200);
      expect(res.json().id).toBe(order.id);
    }
    await command(order.id, 'cancel');
    const stale = await get(order.id, { 'if-none-match': '"1"' });
    expect(stale.statusCode).toBe(200);
    expect(stale.headers.etag).toBe('"2"');
  });

  it('an unknown order is 404 whatever If-None-Match says', async () => {
    const res = await get('0190a8f0-0000-7000-8000-000000000000', { 'if-none-match': '*' });
    expectProblem(res, 404, 'not_found');
  });
});

describe('POST /orders/{id}/cancel', () => {
  it('cancels a pending order: version 2, reason requested, one OrderCancelled whose payload is the order', async () => {
    const order = await createOrder();
    const before = await transitions('pending', 'cancelled');
    const woken = committedEvents.length;
    const res = await command(order.id, 'cancel');
    expect(res.statusCode).toBe(200);
    expect(res.headers.etag).toBe('"2"');
    const cancelled = res.json();
    expect(cancelled).toMatchObject({
      id: order.id,
      status: 'cancelled',
      cancellationReason: 'requested',
      version: 2,
      stock: 'pending',
      payment: 'pending',
      createdAt: order.createdAt,
    });
    expect(Date.parse(cancelled.updatedAt)).toBeGreaterThanOrEqual(Date.parse(order.createdAt as string));
    expect((await get(order.id)).body).toBe(res.body);
    const events = await outboxOf(order.id);
    expect(events.map((e) => e.type)).toEqual(['OrderCreated', 'OrderCancelled']);
    expect(events[1]!.payload).toEqual(cancelled);
    expect(committedEvents.slice(woken)).toEqual([events[1]!.id]);
    expect(await transitions('pending', 'cancelled')).toBe(before + 1);
  });

  it('a repeat is 200 with the order unchanged (version stays, no second event, nothing counted)', async () => {
    const order = await createOrder();
    const first = await command(order.id, 'cancel');
    const count = await transitions('pending', 'cancelled');
    const again = await command(order.id, 'cancel');
    expect(again.statusCode).toBe(200);
    expect(again.body).toBe(first.body);
    expect(again.headers.etag).toBe('"2"');
    expect((await outboxOf(order.id)).filter((e) => e.type === 'OrderCancelled')).toHaveLength(1);
    expect(await transitions('pending', 'cancelled')).toBe(count);
  });

  it('cancels a confirmed order; a shipped one is 409 invalid_transition', async () => {
    const order = await createOrder();
    await confirm(order.id);
    const confirmed = await get(order.id);
    expect(confirmed.json()).toMatchObject({
      status: 'confirmed',
      version: 3,
      stock: 'reserved',
      payment: 'captured',
    });
    const res = await command(order.id, 'cancel', { headers: { 'if-match': '"3"' } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'cancelled', version: 4, cancellationReason: 'requested' });

    const other = await createOrder();
    await confirm(other.id);
    expect((await command(other.id, 'ship')).statusCode).toBe(200);
    expectProblem(await command(other.id, 'cancel'), 409, 'invalid_transition');
    expectProblem(
      await command(other.id, 'cancel', { headers: { 'if-match': '*' } }),
      409,
      'invalid_transition',
    );
    expect((await get(other.id)).json()).toMatchObject({ status: 'shipped', version: 4 });
  });

  it('a stale If-Match is 412, checked before the transition (even where it would be unchanged or refused)', async () => {
    const order = await createOrder();
    expectProblem(
      await command(order.id, 'cancel', { headers: { 'if-match': '"2"' } }),
      412,
      'precondition_failed',
    );
    expect((await get(order.id)).json()).toMatchObject({ status: 'pending', version: 1 });
    expect((await command(order.id, 'cancel', { headers: { 'if-match': '"1"' } })).statusCode).toBe(200);
    // Now cancelled at version 2: a repeat would be unchanged (200), a ship refused (409), but "1" is stale.
    expectProblem(
      await command(order.id, 'cancel', { headers: { 'if-match': '"1"' } }),
      412,
      'precondition_failed',
    );
    expectProblem(
      await command(order.id, 'ship', { headers: { 'if-match': '"1"' } }),
      412,
      'precondition_failed',
    );
    expectProblem(
      await command(order.id, 'ship', { headers: { 'if-match': '"2"' } }),
      409,
      'invalid_transition',
    );
    // A weak tag never matches If-Match (strong comparison); a list matches when one of its tags does.
    expectProblem(
      await command(order.id, 'cancel', { headers: { 'if-match': 'W/"2"' } }),
      412,
      'precondition_failed',
    );
    expect((await command(order.id, 'cancel', { headers: { 'if-match': '"9", "2"' } })).statusCode).toBe(200);
    expect((await outboxOf(order.id)).map((e) => e.type)).toEqual(['OrderCreated', 'OrderCancelled']);
  });

  it('refuses a malformed If-Match with 400', async () => {
    const order = await createOrder();
    for (const value of ['1', '"1', 'W/1', '"1",,', 'abc']) {
      expectProblem(
        await command(order.id, 'cancel', { headers: { 'if-match': value } }),
        400,
        'validation_failed',
      );
    }
    expect((await get(order.id)).json()).toMatchObject({ status: 'pending', version: 1 });
  });

  it('takes no body, an empty one (with or without a JSON Content-Type) or {}; anything else is 400 (415 if not JSON)', async () => {
    const cases: [Record<string, string>, string | undefined][] = [
      [{}, undefined],
      [{}, ''],
      [{ 'content-type': 'application/json' }, ''],
      [{ 'content-type': 'application/json' }, '{}'],
      [{ 'content-type': 'application/json; charset=utf-8' }, ' { } '],
      [{ 'content-type': 'text/plain' }, ''],
    ];
    for (const [headers, payload] of cases) {
      const order = await createOrder();
      const res = await command(order.id, 'cancel', {
        headers,
        ...(payload === undefined ? {} : { payload }),
      });
      expect(res.statusCode, JSON.stringify([headers, payload])).toBe(200);
    }
    const order = await createOrder();
    for (const payload of ['{"reason":"x"}', '[]', 'null', '"x"', '{', '0']) {
      const res = await command(order.id, 'cancel', {
        headers: { 'content-type': 'application/json' },
        payload,
      });
      expectProblem(res, 400, 'validation_failed');
    }
    expectProblem(
      await command(order.id, 'cancel', { headers: { 'content-type': 'text/plain' }, payload: 'please' }),
      415,
      'unsupported_media_type',
    );
    expect((await get(order.id)).json()).toMatchObject({ status: 'pending', version: 1 });
  });

  it('an unknown order is 404, a bad id 400', async () => {
    expectProblem(await command('0190a8f0-0000-7000-8000-000000000000', 'cancel'), 404, 'not_found');
    expectProblem(await command('not-a-uuid', 'ship'), 400, 'validation_failed');
  });
});

describe('POST /orders/{id}/ship', () => {
  it('ships a confirmed order (OrderShipped); a repeat is 200 unchanged; pending and cancelled are 409', async () => {
    const order = await createOrder();
    expectProblem(await command(order.id, 'ship'), 409, 'invalid_transition');
    await confirm(order.id);
    const before = await transitions('confirmed', 'shipped');
    const res = await command(order.id, 'ship', { headers: { 'if-match': '"3"' } });
    expect(res.statusCode).toBe(200);
    expect(res.headers.etag).toBe('"4"');
    const shipped = res.json();
    expect(shipped).toMatchObject({ status: 'shipped', version: 4, cancellationReason: null });
    const again = await command(order.id, 'ship');
    expect(again.statusCode).toBe(200);
    expect(again.body).toBe(res.body);
    const events = await outboxOf(order.id);
    expect(events.map((e) => e.type)).toEqual(['OrderCreated', 'OrderConfirmed', 'OrderShipped']);
    expect(events[2]!.payload).toEqual(shipped);
    expect(await transitions('confirmed', 'shipped')).toBe(before + 1);

    const cancelled = await createOrder();
    await command(cancelled.id, 'cancel');
    expectProblem(await command(cancelled.id, 'ship'), 409, 'invalid_transition');
  });
});
