/**
 * What `serve --processes N` answers on /metrics: every process's registry summed by prom-client's
 * AggregatorRegistry.aggregate, each metric by its `aggregator` (the primary does exactly this
 * with the JSON its children send).
 */
import { AggregatorRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/platform/metrics.js';

function processMetrics(requests: number, pool: { total: number; idle: number; waiting: number }) {
  const metrics = createMetrics();
  for (let i = 0; i < requests; i++) {
    metrics.httpRequestDuration.observe('GET', '/orders/:id', 200, 0.003);
  }
  metrics.ordersCreated.inc(requests);
  metrics.trackPool(() => ({ ...pool, max: 10 }));
  return metrics;
}

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metrics aggregated across serve processes', () => {
  it('sums counters, histograms and the pool gauges; drops what means nothing summed', async () => {
    const a = processMetrics(3, { total: 4, idle: 1, waiting: 0 });
    const b = processMetrics(5, { total: 2, idle: 2, waiting: 1 });
    const text = await AggregatorRegistry.aggregate([
      await a.registry.getMetricsAsJSON(),
      await b.registry.getMetricsAsJSON(),
    ]).metrics();

    const labels = 'method="GET",route="/orders/:id",status_code="200"';
    expect(sample(text, `http_request_duration_seconds_count{${labels}}`)).toBe(8);
    expect(sample(text, `http_request_duration_seconds_bucket{le="0.005",${labels}}`)).toBe(8);
    expect(sample(text, `http_request_duration_seconds_bucket{le="0.002",${labels}}`)).toBe(0);
    expect(sample(text, 'orders_created_total')).toBe(8);
    expect(sample(text, 'db_pool_connections_in_use')).toBe(3 + 0);
    expect(sample(text, 'db_pool_connections_idle')).toBe(3);
    expect(sample(text, 'db_pool_waiting_requests')).toBe(1);
    expect(sample(text, 'db_pool_connections_max')).toBe(20);
    // A start time summed is no time at all: prom-client omits it; the version is taken once.
    expect(text).not.toMatch(/^process_start_time_seconds /m);
    expect(text.match(/^nodejs_version_info\{/gm)).toHaveLength(1);
  });

  it('answers scrapes from the collector the cluster installs, else from its own registry', async () => {
    const metrics = processMetrics(2, { total: 1, idle: 1, waiting: 0 });
    expect(sample(await metrics.exposition(), 'orders_created_total')).toBe(2);
    metrics.aggregateAcrossProcesses(async () => 'orders_created_total 42\n');
    expect(await metrics.exposition()).toBe('orders_created_total 42\n');
  });
});
