/**
 * Prometheus metrics. Each process owns one registry (no module-level global), so tests can
 * build several apps side by side and read exact counts.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { PoolStats } from './db.js';
import { RequestDurationHistogram } from './request-duration.js';

export function createMetrics(options: { prefix?: string; defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics !== false)
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 });

  const httpRequestDuration = new RequestDurationHistogram(
    'http_request_duration_seconds',
    'HTTP request duration by method, route template and status code',
    [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registry,
  );
  const ordersCreated = new Counter({
    name: 'orders_created_total',
    help: 'Orders created (replays not counted)',
    registers: [registry],
  });
  const idempotency = new Counter({
    name: 'orders_idempotency_outcomes_total',
    help: 'Requests carrying an Idempotency-Key, by outcome (created, replayed, conflict, mismatch)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const statusTransitions = new Counter({
    name: 'orders_status_transitions_total',
    help: 'Order status changes, by the status before and after (counted after commit; commands and consumed events)',
    labelNames: ['from', 'to'] as const,
    registers: [registry],
  });
  const authFailures = new Counter({
    name: 'orders_auth_failures_total',
    help: 'Requests refused by authentication or authorization, by reason (missing, invalid, expired, insufficient_scope, jwks_unavailable)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const eventsHandled = new Counter({
    name: 'orders_events_handled_total',
    help: 'Outbox events handled by the worker, by type and outcome (processed, retried, dead)',
    labelNames: ['type', 'outcome'] as const,
    registers: [registry],
  });
  const inboundEvents = new Counter({
    name: 'orders_inbound_events_total',
    help: 'Consumed events (Catalog, Payments), by type and outcome (applied, unchanged, duplicate, dead, retried)',
    labelNames: ['type', 'outcome'] as const,
    registers: [registry],
  });
  const eventDeliveryLag = new Histogram({
    name: 'orders_event_delivery_seconds',
    help: 'Time from an event being committed to its successful processing',
    labelNames: ['type'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  });

  // What a /metrics scrape answers: this registry, unless `serve --processes N` aggregates.
  let exposition: () => Promise<string> = () => registry.metrics();

  return {
    registry,
    /** The text a /metrics scrape answers. */
    exposition: () => exposition(),
    /**
     * `serve --processes N`: a scrape answers `collect()` (every process's registry, aggregated
     * by the primary with prom-client's AggregatorRegistry) instead of this registry alone.
     */
    aggregateAcrossProcesses(collect: () => Promise<string>) {
      exposition = collect;
    },
    httpRequestDuration,
    ordersCreated,
    idempotency,
    statusTransitions,
    authFailures,
    eventsHandled,
    inboundEvents,
    eventDeliveryLag,
    /**
     * Pool gauges read the pool at scrape time. Across `serve --processes N` they add up (each
     * process has its own pool, so the connections held are the sum).
     */
    trackPool(stats: () => PoolStats) {
      const gauge = (name: string, help: string, read: (s: PoolStats) => number) =>
        new Gauge({
          name,
          help,
          aggregator: 'sum',
          registers: [registry],
          collect() {
            this.set(read(stats()));
          },
        });
      gauge('db_pool_connections_in_use', 'Pool connections checked out', (s) => s.total - s.idle);
      gauge('db_pool_connections_idle', 'Pool connections idle', (s) => s.idle);
      gauge('db_pool_waiting_requests', 'Callers waiting for a pool connection', (s) => s.waiting);
      gauge('db_pool_connections_max', 'Pool size limit', (s) => s.max);
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
