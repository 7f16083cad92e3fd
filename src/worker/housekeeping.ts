/**
 * Housekeeping the worker runs periodically: processed events (and their notifications) older
 * than the retention are purged, processed inbox rows (consumed events) too, and expired
 * Idempotency-Key records. Deletes go in small
 * batches (`LIMIT` + `SKIP LOCKED`), so each statement holds its locks briefly and replicas doing
 * the same work at the same time do not queue behind each other. Dead events are never purged:
 * they wait for an operator (`orders events retry`), and so do dead inbox rows (`orders inbox
 * retry`). A consumed event's row is what makes its redelivery a duplicate: the retention must
 * outlast any redelivery (JetStream redelivers within seconds to minutes; 7 days by default).
 *
 * The delete statements live here, with their only caller and the retention they apply.
 */
import type { Db, Queryable, QueryOptions } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import { sleep } from '../platform/shutdown.js';

export interface HousekeepingOptions {
  db: Db;
  logger: Logger;
  /** Processed events (with their notifications) and processed inbox rows older than this are deleted. */
  retentionMs: number;
  /** Rows per delete statement. */
  batchSize: number;
  /** Time between runs; 0 disables the timer (runOnce still works). */
  intervalMs: number;
  /** A run stops after this long even if rows remain; the next run continues (default 30 s). */
  maxRunMs?: number;
}

export interface PurgeCounts {
  events: number;
  /** Processed inbox rows (consumed events). */
  inbox: number;
  idempotencyKeys: number;
}

export function createHousekeeper(options: HousekeepingOptions) {
  const { db, logger } = options;
  const maxRunMs = options.maxRunMs ?? 30_000;
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<unknown> | undefined;

  async function drain(step: (signal: AbortSignal) => Promise<number>, until: number, signal: AbortSignal) {
    let total = 0;
    while (!signal.aborted && Date.now() < until) {
      const n = await step(signal);
      total += n;
      if (n < options.batchSize) break;
      // Give the database (and other replicas) room between batches.
      await sleep(10, signal);
    }
    return total;
  }

  async function runOnce(signal: AbortSignal = controller.signal): Promise<PurgeCounts> {
    const until = Date.now() + maxRunMs;
    const events = await drain(
      (s) =>
        purgeProcessedEvents(
          db,
          { retentionMs: options.retentionMs, limit: options.batchSize },
          { signal: s },
        ),
      until,
      signal,
    );
    const inbox = await drain(
      (s) =>
        purgeProcessedInbox(
          db,
          { retentionMs: options.retentionMs, limit: options.batchSize },
          { signal: s },
        ),
      until,
      signal,
    );
    const idempotencyKeys = await drain(
      (s) => purgeExpiredIdempotencyKeys(db, { limit: options.batchSize }, { signal: s }),
      until,
      signal,
    );
    if (events > 0 || inbox > 0 || idempotencyKeys > 0) {
      logger.info(
        { events, inbox, idempotencyKeys, retentionMs: options.retentionMs },
        'housekeeping purged old rows',
      );
    }
    return { events, inbox, idempotencyKeys };
  }

  function schedule(delayMs: number) {
    if (controller.signal.aborted || options.intervalMs <= 0) return;
    timer = setTimeout(() => {
      current = runOnce()
        .catch((error: unknown) => {
          if (!controller.signal.aborted)
            logger.warn({ err: error }, 'housekeeping failed; it will run again later');
        })
        .finally(() => {
          current = undefined;
          // ±10 % jitter so replicas started together drift apart.
          schedule(options.intervalMs * (0.9 + Math.random() * 0.2));
        });
    }, delayMs);
    timer.unref();
  }

  return {
    /** First run after a short random delay, then every intervalMs. */
    start() {
      schedule(Math.min(options.intervalMs, 5_000) * Math.random());
    },
    /** Cancels the timer and any run in progress (a cancelled delete simply rolls back). */
    async stop() {
      controller.abort(new Error('housekeeping stopped'));
      clearTimeout(timer);
      await current?.catch(() => undefined);
    },
    runOnce,
  };
}

export type Housekeeper = ReturnType<typeof createHousekeeper>;

/**
 * Deletes up to `limit` processed events older than the retention, with their notifications,
 * in one statement (small batches keep locks and WAL bursts short). Returns how many events.
 */
async function purgeProcessedEvents(
  db: Queryable,
  options: { retentionMs: number; limit: number },
  queryOptions?: QueryOptions,
): Promise<number> {
  const result = await db.query<{ n: number }>(
    {
      name: 'outbox.purge_processed',
      text: `
WITH doomed AS (
  SELECT ctid FROM outbox_events
  WHERE status = 'processed' AND processed_at < now() - make_interval(secs => $1::double precision)
  LIMIT $2
  FOR UPDATE SKIP LOCKED
), gone AS (
  DELETE FROM outbox_events WHERE ctid IN (SELECT ctid FROM doomed) RETURNING id
), notes AS (
  DELETE FROM notifications WHERE event_id IN (SELECT id FROM gone)
)
SELECT count(*)::int AS n FROM gone`,
    },
    [options.retentionMs / 1000, options.limit],
    queryOptions,
  );
  return result.rows[0]?.n ?? 0;
}

/** Deletes up to `limit` processed inbox rows older than the retention. Returns how many. */
async function purgeProcessedInbox(
  db: Queryable,
  options: { retentionMs: number; limit: number },
  queryOptions?: QueryOptions,
): Promise<number> {
  const result = await db.query(
    {
      name: 'inbox.purge_processed',
      text: `
DELETE FROM inbox_messages WHERE ctid IN (
  SELECT ctid FROM inbox_messages
  WHERE status = 'processed' AND processed_at < now() - make_interval(secs => $1::double precision)
  LIMIT $2
  FOR UPDATE SKIP LOCKED
)`,
    },
    [options.retentionMs / 1000, options.limit],
    queryOptions,
  );
  return result.rowCount ?? 0;
}

/** Deletes up to `limit` expired Idempotency-Key records. Returns how many. */
async function purgeExpiredIdempotencyKeys(
  db: Queryable,
  options: { limit: number },
  queryOptions?: QueryOptions,
): Promise<number> {
  const result = await db.query(
    {
      name: 'idempotency.purge_expired',
      text: `
DELETE FROM idempotency_keys WHERE ctid IN (
  SELECT ctid FROM idempotency_keys WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED
)`,
    },
    [options.limit],
    queryOptions,
  );
  return result.rowCount ?? 0;
}
