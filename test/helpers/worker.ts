/**
 * A worker tuned for tests (fast polls, no housekeeping, no NATS), serve's wiring of the app and
 * a worker, and a wait for an event's outcome.
 */
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../src/config.js';
import { createOrdersService } from '../../src/orders/service.js';
import type { Db } from '../../src/platform/db.js';
import { createMetrics } from '../../src/platform/metrics.js';
import { sleep } from '../../src/platform/shutdown.js';
import type { Telemetry } from '../../src/platform/telemetry.js';
import { buildApp } from '../../src/server/app.js';
import {
  createWorker,
  type Worker,
  type WorkerDeps,
  workerOptionsFromConfig,
} from '../../src/worker/index.js';
import { testLogger } from './db.js';

export function createFastTestWorker(db: Db, telemetry: Telemetry): Worker {
  return createWorker({
    db,
    logger: testLogger,
    metrics: createMetrics({ defaultMetrics: false }),
    telemetry,
    publisher: null,
    options: workerOptionsFromConfig(loadConfig({}), {
      pollIntervalMs: 20,
      maxIdlePollIntervalMs: 20,
      housekeepingIntervalMs: 0,
    }),
  });
}

/**
 * serve's wiring on a test database: orders hand their events to the worker (pre-claimed) or wake it (polls every 50 ms, no housekeeping),
 * the app is built on the same metrics. The worker is not started: the caller starts it.
 */
export async function wireServe(
  db: Db,
  options: { env?: Record<string, string>; partners?: WorkerDeps['partners']; publisher?: null } = {},
): Promise<{ app: FastifyInstance; worker: Worker }> {
  const metrics = createMetrics({ defaultMetrics: false });
  const worker = createWorker({
    db,
    logger: testLogger,
    metrics,
    publisher: options.publisher,
    partners: options.partners,
    options: workerOptionsFromConfig(loadConfig(options.env ?? {}), {
      pollIntervalMs: 50,
      maxIdlePollIntervalMs: 200,
      housekeepingIntervalMs: 0,
    }),
  });
  const orders = createOrdersService({
    db,
    idempotencyTtlHours: 24,
    onEventCommitted: (id) => worker.wake(id),
    preClaim: () => worker.preClaim(),
  });
  const app = await buildApp({
    logger: testLogger,
    orders,
    metrics,
    lifecycle: { shuttingDown: false, draining: false },
    readiness: async () => true,
    requestTimeoutMs: 10_000,
    idempotencyTtlHours: 24,
  });
  return { app, worker };
}

/** Polls the event's status until it is `status` (or the time runs out; the caller asserts). */
export async function waitForEventStatus(
  db: Db,
  id: string,
  status: string,
  timeoutMs = 2_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await db.query<{ status: string }>('SELECT status FROM outbox_events WHERE id = $1', [id]);
    if (r.rows[0]?.status === status) return;
    await sleep(10);
  }
}
