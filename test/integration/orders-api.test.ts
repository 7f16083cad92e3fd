import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, postOrder, validOrder } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let tdb: TestDatabase;
let app: FastifyInstance;
let committedEvents: string[];

beforeAll(async () => {
  tdb = await createTestDatabase();
  ({ app, committedEvents } = await buildTestApp(tdb));
});

afterAll(async () => {
  await app?.close();
  await tdb?.drop();
});

const post = (body: unknown, headers: Record<string, string> = {}) => postOrder(app, body, headers);

function expectProblem(
  res: { statusCode: number; headers: Record<string, unknown>; body: string },
  status: number,
  code: string,
) {
  expect(res.statusCode).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(res.body);
  expect(body).toMatchObject({ status, code, type: `/problems/${code}` });
  expect(typeof body.title).toBe('string');
  expect(typeof body.detail).toBe('string');
  expect(typeof body.instance).toBe('string');
  expect(res.body).not.toMatch(/at .*\.js:\d+|SELECT|INSERT|stack/i);
  return body;
}

describe('POST /orders', () => {
  it('creates the order, its items and one OrderCreated event in one transaction', async () => {
    const res = await post(validOrder());
    expect(res.statusCode).toBe(201);
    const order = res.json();
    expect(res.headers.location).toBe(`/orders/${order.id}`);
    expect(order).toMatchObject({ customerId: 'c-42', status: 'pending', currency: 'EUR', total: 4498 });
    expect(order.items).toEqual(validOrder().items);
    expect(new Date(order.createdAt).toISOString()).toBe(order.createdAt);

    const rows = await tdb.db.query(
      `SELECT (SELECT count(*) FROM order_items WHERE order_id = $1) AS items,
              (SELECT count(*) FROM outbox_events WHERE aggregate_id = $1 AND type = 'OrderCreated') AS events,
              (SELECT payload FROM outbox_events WHERE aggregate_id = $1) AS payload`,
      [order.id],
    );
    expect(rows.rows[0]).toMatchObject({ items: 2, events: 1 });
    expect(rows.rows[0].payload).toEqual(order);
    expect(committedEvents.length).toBeGreaterThan(0);
  });

  it('stores nothing when validation fails', async () => {
    const before = await tdb.db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders');
    const body = expectProblem(
      await post({ ...validOrder(), currency: 'eur', extra: true }),
      400,
      'validation_failed',
    );
    expect(body.errors).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: '/currency' }),
        expect.objectContaining({ path: '/extra' }),
      ]),
    );
    const after = await tdb.db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders');
    expect(after.rows[0]!.n).toBe(before.rows[0]!.n);
  });

  it('answers malformed JSON, prototype pollution and non-UTF-8 with 400', async () => {
    expectProblem(await post('{"customerId":'), 400, 'validation_failed');
    expectProblem(
      await post('{"__proto__":{"x":1},"customerId":"c","currency":"EUR","items":[]}'),
      400,
      'validation_failed',
    );
    expectProblem(
      await post('{"constructor":{"prototype":{"x":1}},"customerId":"c","currency":"EUR","items":[]}'),
      400,
      'validation_failed',
    );
    const latin1 = Buffer.concat([
      Buffer.from('{"customerId":"caf'),
      Buffer.from([0xe9]),
      Buffer.from('","currency":"EUR","items":[{"sku":"a","quantity":1,"unitPrice":1}]}'),
    ]);
    const res = await app.inject({
      method: 'POST',
      url: '/orders',
      headers: { 'content-type': 'application/json' },
      payload: latin1,
    });
    expectProblem(res, 400, 'validation_failed');
    expectProblem(await post('', {}), 400, 'validation_failed');
  });

  it('answers 415 when the body is not declared as JSON', async () => {
    expectProblem(
      await app.inject({
        method: 'POST',
        url: '/orders',
        headers: { 'content-type': 'text/plain' },
        payload: '{}',
      }),
      415,
      'unsupported_media_type',
    );
    expectProblem(
      await app.inject({ method: 'POST', url: '/orders', payload: 'x' }),
      415,
      'unsupported_media_type',
    );
  });

  it('answers 413 above 1 MiB', async () => {
    const huge = JSON.stringify({ ...validOrder(), customerId: 'x'.repeat(1024 * 1024) });
    expectProblem(await post(huge), 413, 'payload_too_large');
  });

  it('accepts huge numbers only as validation errors', async () => {
    const body = expectProblem(
      await post('{"customerId":"c","currency":"EUR","items":[{"sku":"a","quantity":1e400,"unitPrice":1}]}'),
      400,
      'validation_failed',
    );
    expect(body.errors[0].path).toBe('/items/0/quantity');
  });
});

describe('GET /orders/{id}', () => {
  it('returns the order as created', async () => {
    const created = await post(validOrder());
    const res = await app.inject({ method: 'GET', url: created.headers.location as string });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(created.json());
  });

  it('404 for an unknown id, 400 for a malformed one', async () => {
    expectProblem(
      await app.inject({ method: 'GET', url: '/orders/00000000-0000-4000-8000-000000000000' }),
      404,
      'not_found',
    );
    const body = expectProblem(
      await app.inject({ method: 'GET', url: '/orders/not-a-uuid' }),
      400,
      'validation_failed',
    );
    expect(body.errors[0].path).toBe('/id');
  });
});

describe('GET /orders/{id}/events', () => {
  it('lists the OrderCreated event with its delivery state', async () => {
    const created = (await post(validOrder())).json();
    const res = await app.inject({ method: 'GET', url: `/orders/${created.id}/events` });
    expect(res.statusCode).toBe(200);
    const { events } = res.json();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      type: 'OrderCreated',
      status: 'pending',
      attempts: 0,
      processedAt: null,
    });
    expect(events[0].id).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Date(events[0].createdAt).toISOString()).toBe(events[0].createdAt);
  });

  it('404 for an unknown order', async () => {
    expectProblem(
      await app.inject({ method: 'GET', url: '/orders/00000000-0000-4000-8000-000000000000/events' }),
      404,
      'not_found',
    );
  });
});

describe('cross-cutting', () => {
  it('echoes a valid X-Request-Id and replaces an invalid one', async () => {
    const ok = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'abc-123' } });
    expect(ok.headers['x-request-id']).toBe('abc-123');
    const bad = await app.inject({
      method: 'GET',
      url: '/healthz',
      headers: { 'x-request-id': 'has space' },
    });
    expect(bad.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const long = await app.inject({
      method: 'GET',
      url: '/healthz',
      headers: { 'x-request-id': 'x'.repeat(129) },
    });
    expect(long.headers['x-request-id']).not.toBe('x'.repeat(129));
  });

  it('answers unknown routes with a 404 problem', async () => {
    expectProblem(await app.inject({ method: 'GET', url: '/nope' }), 404, 'not_found');
    expectProblem(await app.inject({ method: 'DELETE', url: '/orders' }), 404, 'not_found');
  });

  it('health, readiness and metrics', async () => {
    const health = await app.inject({ method: 'GET', url: '/healthz' });
    expect(health.json()).toEqual({ status: 'ok' });
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.body).toContain('http_request_duration_seconds_bucket');
    expect(metrics.body).toMatch(/orders_created_total \d+/);
  });

  it('serves an OpenAPI 3.1 document and the docs UI', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/orders',
        '/orders/{id}',
        '/orders/{id}/events',
        '/healthz',
        '/readyz',
        '/metrics',
      ]),
    );
    const post201 = doc.paths['/orders'].post.responses['201'];
    expect(post201.headers.Location).toBeDefined();
    expect(doc.paths['/orders'].post.responses['409'].headers['Retry-After']).toBeDefined();
    expect(doc.paths['/orders'].post.responses['422'].content['application/problem+json']).toBeDefined();
    const docs = await app.inject({ method: 'GET', url: '/docs' });
    expect([200, 302]).toContain(docs.statusCode);
  });
});
