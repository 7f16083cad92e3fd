/**
 * Outbox gauges, read from the database at scrape time (each count reads one small partial
 * index). Registered once per registry, however many workers share it.
 */
import { Gauge } from 'prom-client';
import { type OutboxStats, outboxStats } from '../messaging/outbox.js';
import type { Queryable } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';

export const OUTBOX_EVENTS_GAUGE = 'orders_outbox_events';
export const OUTBOX_OLDEST_PENDING_GAUGE = 'orders_outbox_oldest_pending_age_seconds';
const SCRAPE_TIMEOUT_MS = 2_000;

export function registerOutboxGauges(metrics: Metrics, db: Queryable, logger: Logger): void {
  const { registry } = metrics;
  if (registry.getSingleMetric(OUTBOX_EVENTS_GAUGE)) return;

  // Both gauges are collected in the same scrape: share one query between them.
  let inFlight: Promise<OutboxStats | undefined> | undefined;
  const read = () => {
    inFlight ??= outboxStats(db, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) })
      .catch((error: unknown) => {
        logger.warn({ err: error }, 'cannot read outbox gauges; keeping their last values');
        return undefined;
      })
      .finally(() => {
        setImmediate(() => {
          inFlight = undefined;
        });
      });
    return inFlight;
  };

  new Gauge({
    name: OUTBOX_EVENTS_GAUGE,
    help: 'Outbox events by status: pending is the depth of the queue, dead awaits an operator',
    labelNames: ['status'] as const,
    registers: [registry],
    // Read from the database, so every process reports the same value: `serve --processes N`
    // must not add them up (only one process runs the worker today; this keeps it right if not).
    aggregator: 'max',
    async collect() {
      const stats = await read();
      if (!stats) return;
      this.set({ status: 'pending' }, stats.pending);
      this.set({ status: 'processing' }, stats.processing);
      this.set({ status: 'dead' }, stats.dead);
    },
  });
  new Gauge({
    name: OUTBOX_OLDEST_PENDING_GAUGE,
    help: 'Seconds the longest-waiting pending event has been due (0 when none is waiting)',
    registers: [registry],
    aggregator: 'max',
    async collect() {
      const stats = await read();
      if (stats) this.set(stats.oldestPendingAgeSeconds);
    },
  });
}
