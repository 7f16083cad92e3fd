/**
 * With tracing on, each event's handling is a consumer span in the trace of the request that
 * wrote it, and the worker's background statements (polls, batched writes) make no spans.
 */
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createDb, type Db } from '../../src/core/db.js';
import { sleep } from '../../src/core/lifecycle.js';
import { createMetrics } from '../../src/core/metrics.js';
import { startTelemetry, type Telemetry } from '../../src/core/telemetry.js';
import { createWorker, type Worker } from '../../src/worker/index.js';
import { createTestDatabase, type TestDatabase, testLogger } from '../helpers/db.js';

const exporter = new InMemorySpanExporter();
let telemetry: Telemetry;
let tdb: TestDatabase;
let tracedDb: Db;
let worker: Worker;

beforeAll(async () => {
  telemetry = await startTelemetry({ serviceName: 'orders-test', logger: testLogger, exporter });
  tdb = await createTestDatabase();
  tracedDb = createDb({
    connectionString: tdb.url,
    max: tdb.kind === 'pglite' ? 1 : 5,
    logger: testLogger,
    telemetry,
  });
});

afterAll(async () => {
  await worker?.stop({ timeoutMs: 1_000 });
  await tracedDb?.close();
  await tdb?.drop();
  await telemetry?.shutdown();
});

describe('worker tracing', () => {
  it('continues the order request trace and keeps polls out of the traces', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    worker = createWorker({
      db: tracedDb,
      logger: testLogger,
      metrics: createMetrics({ defaultMetrics: false }),
      config: loadConfig({}),
      telemetry,
      publisher: null,
      options: { pollIntervalMs: 20, maxIdlePollIntervalMs: 20, housekeepingIntervalMs: 0 },
    });
    await worker.start();
    await sleep(100); // several idle polls
    exporter.reset();
    const inserted = await tdb.db.query<{ id: string }>(
      `INSERT INTO outbox_events (id, aggregate_type, aggregate_id, type, payload, trace_context)
       SELECT gen_random_uuid(), 'order', o, 'OrderCreated', jsonb_build_object('id', o, 'customerId', 'c'), $1
       FROM (SELECT gen_random_uuid() AS o) x RETURNING id`,
      [{ traceparent: `00-${traceId}-00f067aa0ba902b7-01` }],
    );
    const id = inserted.rows[0]!.id;
    worker.wake(id);
    for (let i = 0; i < 200; i++) {
      const r = await tdb.db.query<{ status: string }>('SELECT status FROM outbox_events WHERE id = $1', [
        id,
      ]);
      if (r.rows[0]?.status === 'processed') break;
      await sleep(10);
    }
    await sleep(100);
    const spans = exporter.getFinishedSpans();
    const processed = spans.filter((s) => s.name === 'OrderCreated process');
    expect(processed).toHaveLength(1);
    expect(processed[0]!.spanContext().traceId).toBe(traceId);
    expect(processed[0]!.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
    expect(processed[0]!.attributes['messaging.message.id']).toBe(id);
    expect(spans.filter((s) => s.name.startsWith('pg '))).toEqual([]);
  });

  it('starts a new trace linked to the request on a redelivery', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    exporter.reset();
    // attempts = 1: it was delivered once before (and failed); this claim is attempt 2.
    const inserted = await tdb.db.query<{ id: string }>(
      `INSERT INTO outbox_events (id, aggregate_type, aggregate_id, type, payload, trace_context, attempts)
       SELECT gen_random_uuid(), 'order', o, 'OrderCreated', jsonb_build_object('id', o, 'customerId', 'c'), $1, 1
       FROM (SELECT gen_random_uuid() AS o) x RETURNING id`,
      [{ traceparent: `00-${traceId}-b7ad6b7169203331-01` }],
    );
    const id = inserted.rows[0]!.id;
    worker.wake(id);
    for (let i = 0; i < 200; i++) {
      const r = await tdb.db.query<{ status: string }>('SELECT status FROM outbox_events WHERE id = $1', [
        id,
      ]);
      if (r.rows[0]?.status === 'processed') break;
      await sleep(10);
    }
    await sleep(100);
    const span = exporter.getFinishedSpans().find((s) => s.attributes['messaging.message.id'] === id);
    expect(span).toBeDefined();
    expect(span!.attributes['orders.event.attempt']).toBe(2);
    expect(span!.spanContext().traceId).not.toBe(traceId);
    expect(span!.parentSpanContext).toBeUndefined();
    expect(span!.links.map((l) => [l.context.traceId, l.context.spanId])).toEqual([
      [traceId, 'b7ad6b7169203331'],
    ]);
  });
});
