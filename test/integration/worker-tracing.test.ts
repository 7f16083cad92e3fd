/**
 * With tracing on, each event's handling is a consumer span in the trace of the request that
 * wrote it, and the worker's background statements (polls, batched writes) make no spans.
 */
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../../src/platform/db.js';
import { sleep } from '../../src/platform/shutdown.js';
import { startTelemetry, type Telemetry } from '../../src/platform/telemetry.js';
import type { Worker } from '../../src/worker/index.js';
import { createTestDatabase, type TestDatabase, testLogger } from '../helpers/db.js';
import { createFastTestWorker, waitForEventStatus } from '../helpers/worker.js';

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

/** An OrderCreated event written by a request with this traceparent, after `attempts` attempts. */
async function insertTracedEvent(traceparent: string, attempts: number): Promise<string> {
  const inserted = await tdb.db.query<{ id: string }>(
    `INSERT INTO outbox_events (id, aggregate_type, aggregate_id, type, payload, trace_context, attempts)
     SELECT gen_random_uuid(), 'order', o, 'OrderCreated', jsonb_build_object('id', o, 'customerId', 'c'), $1, $2
     FROM (SELECT gen_random_uuid() AS o) x RETURNING id`,
    [{ traceparent }, attempts],
  );
  return inserted.rows[0]!.id;
}

describe('worker tracing', () => {
  it('continues the order request trace and keeps polls out of the traces', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    worker = createFastTestWorker(tracedDb, telemetry);
    await worker.start();
    await sleep(100); // several idle polls
    exporter.reset();
    const id = await insertTracedEvent(`00-${traceId}-00f067aa0ba902b7-01`, 0);
    worker.wake(id);
    await waitForEventStatus(tdb.db, id, 'processed');
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
    const id = await insertTracedEvent(`00-${traceId}-b7ad6b7169203331-01`, 1);
    worker.wake(id);
    await waitForEventStatus(tdb.db, id, 'processed');
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
