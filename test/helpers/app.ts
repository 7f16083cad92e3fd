/** Builds the real app on a test database, for app.inject tests. */
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../src/config.js';
import { createOrdersService } from '../../src/orders/service.js';
import { createMetrics, type Metrics } from '../../src/platform/metrics.js';
import { isSchemaCurrent } from '../../src/platform/migrations.js';
import { type AppDeps, buildApp, type Lifecycle } from '../../src/server/app.js';
import { type TestDatabase, testLogger } from './db.js';

export interface TestApp {
  app: FastifyInstance;
  metrics: Metrics;
  lifecycle: Lifecycle;
  committedEvents: string[];
}

export async function buildTestApp(tdb: TestDatabase, overrides: Partial<AppDeps> = {}): Promise<TestApp> {
  const config = loadConfig({});
  const metrics = createMetrics({ defaultMetrics: false });
  const lifecycle: Lifecycle = { shuttingDown: false, draining: false };
  const committedEvents: string[] = [];
  const orders = createOrdersService({
    db: tdb.db,
    idempotencyTtlHours: config.IDEMPOTENCY_TTL_HOURS,
    onEventCommitted: (id) => committedEvents.push(id),
  });
  const app = await buildApp({
    logger: testLogger,
    orders,
    metrics,
    lifecycle,
    requestTimeoutMs: config.REQUEST_TIMEOUT_MS,
    idempotencyTtlHours: config.IDEMPOTENCY_TTL_HOURS,
    readiness: (signal) => isSchemaCurrent(tdb.db, { signal }),
    ...overrides,
  });
  await app.ready();
  return { app, metrics, lifecycle, committedEvents };
}

export const validOrder = () => ({
  customerId: 'c-42',
  currency: 'EUR',
  items: [
    { sku: 'SKU-1', quantity: 2, unitPrice: 1999 },
    { sku: 'SKU-2', quantity: 1, unitPrice: 500 },
  ],
});

/** POST /orders through app.inject: a string body is sent as is, anything else as JSON. */
export function postOrder(app: FastifyInstance, body: unknown, headers: Record<string, string> = {}) {
  return app.inject({
    method: 'POST',
    url: '/orders',
    headers: { 'content-type': 'application/json', ...headers },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
}
