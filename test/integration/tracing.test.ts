import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb } from '../../src/platform/db.js';
import { sleep } from '../../src/platform/shutdown.js';
import { startTelemetry, type Telemetry } from '../../src/platform/telemetry.js';
import { buildTestApp, validOrder } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase, testLogger } from '../helpers/db.js';
import { createFastTestWorker, waitForEventStatus } from '../helpers/worker.js';

let tdb: TestDatabase;
let app: FastifyInstance;
let telemetry: Telemetry;
const exporter = new InMemorySpanExporter();

beforeAll(async () => {
  telemetry = await startTelemetry({ serviceName: 'orders-test', logger: testLogger, exporter });
  tdb = await createTestDatabase();
  // The same database, through a pool that traces its queries.
  const tracedDb = createDb({
    connectionString: tdb.url,
    max: tdb.kind === 'pglite' ? 1 : 5,
    logger: testLogger,
    telemetry,
  });
  const original = tdb.db;
  await original.close();
  tdb.db = tracedDb;
  ({ app } = await buildTestApp(tdb, { telemetry }));
});

afterAll(async () => {
  await app?.close();
  await tdb?.drop();
  await telemetry?.shutdown();
});

describe('tracing', () => {
  it('gives a POST a server span with its database spans in the same trace, parented by traceparent', async () => {
    exporter.reset();
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const res = await app.inject({
      method: 'POST',
      url: '/orders',
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
      payload: JSON.stringify(validOrder()),
    });
    expect(res.statusCode).toBe(201);
    const spans = exporter.getFinishedSpans();
    const server = spans.find((s) => s.name === 'POST /orders');
    expect(server).toBeDefined();
    expect(server!.spanContext().traceId).toBe(traceId);
    expect(server!.attributes['http.response.status_code']).toBe(201);
    const dbSpans = spans.filter((s) => s.name.startsWith('pg '));
    expect(dbSpans.length).toBeGreaterThan(0);
    for (const span of dbSpans) {
      expect(span.spanContext().traceId).toBe(traceId);
      expect(span.parentSpanContext?.spanId).toBe(server!.spanContext().spanId);
    }

    // The outbox event carries the request's trace context for the worker.
    const order = res.json() as { id: string };
    const stored = await tdb.db.query<{ trace_context: { traceparent: string } }>(
      'SELECT trace_context FROM outbox_events WHERE aggregate_id = $1',
      [order.id],
    );
    expect(stored.rows[0]!.trace_context.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
  });

  it('follows one order from the request through the database to the worker in one trace', async () => {
    const worker = createFastTestWorker(tdb.db, telemetry);
    await worker.start();
    try {
      exporter.reset();
      const res = await app.inject({
        method: 'POST',
        url: '/orders',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify(validOrder()),
      });
      const order = res.json() as { id: string };
      const traceId = exporter
        .getFinishedSpans()
        .find((s) => s.name === 'POST /orders')!
        .spanContext().traceId;
      const inTrace = () => exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
      for (let i = 0; i < 300 && !inTrace().some((s) => s.name === 'OrderCreated process'); i++)
        await sleep(10);
      const names = inTrace().map((s) => s.name);
      expect(names).toContain('POST /orders');
      expect(names.some((n) => n.startsWith('pg '))).toBe(true);
      expect(names).toContain('OrderCreated process');
      // The span ends before the batched outcome write lands: wait for it, then assert.
      const events = await tdb.db.query<{ id: string }>(
        'SELECT id FROM outbox_events WHERE aggregate_id = $1',
        [order.id],
      );
      await waitForEventStatus(tdb.db, events.rows[0]!.id, 'processed');
      const after = await tdb.db.query<{ status: string }>(
        'SELECT status FROM outbox_events WHERE aggregate_id = $1',
        [order.id],
      );
      expect(after.rows[0]?.status).toBe('processed');
    } finally {
      await worker.stop({ timeoutMs: 1_000 });
    }
  });

  it('starts a new trace without traceparent and marks 5xx spans as errors', async () => {
    exporter.reset();
    const res = await app.inject({ method: 'GET', url: '/orders/00000000-0000-4000-8000-000000000000' });
    expect(res.statusCode).toBe(404);
    const server = exporter.getFinishedSpans().find((s) => s.name === 'GET /orders/:id');
    expect(server?.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(server?.attributes['http.response.status_code']).toBe(404);
  });
});
