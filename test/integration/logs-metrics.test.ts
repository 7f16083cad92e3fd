import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/platform/logger.js';
import type { Metrics } from '../../src/platform/metrics.js';
import { buildTestApp, postOrder, validOrder } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let tdb: TestDatabase;
let app: FastifyInstance;
let metrics: Metrics;
const lines: Record<string, unknown>[] = [];
const raw: string[] = [];
const sink = new Writable({
  write(chunk, _enc, done) {
    for (const line of String(chunk).split('\n').filter(Boolean)) {
      raw.push(line);
      lines.push(JSON.parse(line));
    }
    done();
  },
});
const logger = createLogger('info', { destination: sink });

beforeAll(async () => {
  tdb = await createTestDatabase();
  ({ app, metrics } = await buildTestApp(tdb, { logger }));
});
afterAll(async () => {
  await app?.close();
  await tdb?.drop();
});

const post = (body: unknown, headers: Record<string, string> = {}) => postOrder(app, body, headers);

describe('logs', () => {
  it('writes one JSON line per request with method, route, status, duration, request id and trace id', async () => {
    lines.length = 0;
    await post(validOrder(), {
      'x-request-id': 'req-log-1',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      authorization: 'Bearer top-secret-token',
      cookie: 'session=cookie-secret',
    });
    const mine = lines.filter((l) => l.requestId === 'req-log-1');
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({
      msg: 'request completed',
      method: 'POST',
      route: '/orders',
      statusCode: 201,
      level: 'info',
      traceId: '0af7651916cd43dd8448eb211c80319c',
    });
    expect(typeof mine[0]!.durationMs).toBe('number');
  });

  it('never writes credentials: headers, URLs in messages, config fields', async () => {
    raw.length = 0;
    logger.info({ config: { DATABASE_URL: 'postgres://app:db-secret@db:5432/orders' } }, 'config loaded');
    logger.error(new Error('connect to postgres://app:db-secret@db:5432/orders failed'), 'boom');
    logger.warn('retrying postgres://app:db-secret@db/orders');
    await post(validOrder(), { authorization: 'Bearer top-secret-token', cookie: 'session=cookie-secret' });
    const all = raw.join('\n');
    expect(all).not.toContain('db-secret');
    expect(all).not.toContain('top-secret-token');
    expect(all).not.toContain('cookie-secret');
    expect(all).toContain('postgres://app:***@db');
  });
});

describe('metrics', () => {
  function value(text: string, name: string, labels = ''): number {
    const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
    return line ? Number(line.split(' ')[1]) : 0;
  }

  it('moves the counters by exactly the traffic sent', async () => {
    const before = await metrics.registry.metrics();
    const key = `metrics-${Date.now()}`;
    await post(validOrder());
    await post(validOrder());
    await post(validOrder(), { 'idempotency-key': key });
    await post(validOrder(), { 'idempotency-key': key });
    await post({ ...validOrder(), currency: 'USD' }, { 'idempotency-key': key });
    await app.inject({ method: 'GET', url: '/orders/00000000-0000-4000-8000-000000000000' });

    const res = await app.inject({ method: 'GET', url: '/metrics' });
    expect(res.headers['content-type']).toContain('text/plain');
    const after = res.body;
    const delta = (name: string, labels = '') => value(after, name, labels) - value(before, name, labels);
    expect(delta('orders_created_total')).toBe(3);
    expect(delta('orders_idempotency_outcomes_total', 'outcome="created"')).toBe(1);
    expect(delta('orders_idempotency_outcomes_total', 'outcome="replayed"')).toBe(1);
    expect(delta('orders_idempotency_outcomes_total', 'outcome="mismatch"')).toBe(1);
    expect(
      delta('http_request_duration_seconds_count', 'method="POST",route="/orders",status_code="201"'),
    ).toBe(4);
    expect(
      delta('http_request_duration_seconds_count', 'method="POST",route="/orders",status_code="422"'),
    ).toBe(1);
    expect(
      delta('http_request_duration_seconds_count', 'method="GET",route="/orders/:id",status_code="404"'),
    ).toBe(1);
    // Every sample line parses as `name{labels} value`.
    for (const line of after.split('\n').filter((l) => l && !l.startsWith('#'))) {
      expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? -?[0-9.e+-]+|NaN|[+-]Inf$/);
    }
  });
});
