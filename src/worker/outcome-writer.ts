/**
 * Records what became of claimed events, in batches (group-commit style, as River's job
 * completer): one flusher writes successes in one statement that also records notifications,
 * failures (retry with backoff, or dead letter) in another, releases in a third. Outcomes reported
 * while a write is in flight wait for the next round, so a busy pool pays one round trip per
 * batch instead of one per event. Those reporting an outcome never learn how it reaches the
 * database: a failed write is retried with backoff until drain()'s deadline.
 */
import {
  type Completion,
  completeEvents,
  type Failure,
  failEvents,
  type NotificationRecord,
  type OutboxEvent,
  releaseEvents,
} from '../messaging/outbox.js';
import type { Db } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import { sleep, within } from '../platform/shutdown.js';
import { traceIdFromTraceparent } from '../platform/telemetry.js';
import { backoffDelay } from './backoff.js';

export interface OutcomeWriterDeps {
  db: Db;
  workerId: string;
  logger: Logger;
  metrics: Metrics;
  random: () => number;
  /** After each write round: the events it wrote are no longer held, so more may be claimed. */
  onWritten: () => void;
}

export interface OutcomeWriter {
  /** The handler succeeded: mark the event processed, recording its notification if any. */
  completed(event: OutboxEvent, notification: NotificationRecord | undefined): void;
  /** Retry later or dead-letter, as each failure says. */
  failed(...failures: Failure[]): void;
  /** Give the events back at once, their attempt not counted (the worker is stopping). */
  released(...events: OutboxEvent[]): void;
  /** Outcomes not written yet (queued or being written): their events are still held. */
  readonly pending: number;
  /**
   * Writes what is pending, for at most `timeoutMs`. Then it gives up on the database: what is
   * still unwritten is dropped with a warning, and the leases expire instead.
   */
  drain(timeoutMs: number): Promise<void>;
}

interface PendingCompletion extends Completion {
  event: OutboxEvent;
}

export function createOutcomeWriter(deps: OutcomeWriterDeps): OutcomeWriter {
  const { logger, random } = deps;
  let completions: PendingCompletion[] = [];
  let failures: Failure[] = [];
  let releases: OutboxEvent[] = [];
  let writingCount = 0;
  let flushing: Promise<void> | undefined;
  let flushFailures = 0;
  const finalController = new AbortController(); // gives up on the database at the hard deadline
  const writeContext: WriteContext = { ...deps, signal: finalController.signal };

  const queued = () => completions.length + failures.length + releases.length;

  function scheduleFlush() {
    flushing ??= flushLoop().finally(() => {
      flushing = undefined;
      // Work may have arrived between the loop's last check and now.
      if (queued() > 0) scheduleFlush();
      else deps.onWritten();
    });
  }

  async function flushLoop() {
    while (queued() > 0) {
      if (finalController.signal.aborted) {
        logger.warn(
          { dropped: queued() },
          'shutdown deadline passed: outcomes not written; the leases will expire instead',
        );
        completions = [];
        failures = [];
        releases = [];
        return;
      }
      const batch = { completions, failures, releases };
      completions = [];
      failures = [];
      releases = [];
      writingCount = batch.completions.length + batch.failures.length + batch.releases.length;
      const results = await Promise.allSettled([
        writeCompletions(writeContext, batch.completions),
        writeFailures(writeContext, batch.failures),
        writeReleases(writeContext, batch.releases),
      ]);
      writingCount = 0;
      const [c, f, r] = results;
      if (c.status === 'rejected') completions.push(...batch.completions);
      if (f.status === 'rejected') failures.push(...batch.failures);
      if (r.status === 'rejected') releases.push(...batch.releases);
      if (results.some((x) => x.status === 'rejected')) {
        flushFailures++;
        const error = results.find((x) => x.status === 'rejected')?.reason;
        const delay = backoffDelay(flushFailures, { baseMs: 100, maxMs: 5_000, random });
        if (flushFailures === 1 || flushFailures % 10 === 0) {
          logger.warn(
            { err: error, failures: flushFailures, retryInMs: delay },
            'writing event outcomes failed; retrying',
          );
        }
        await sleep(delay, finalController.signal);
      } else {
        flushFailures = 0;
      }
      deps.onWritten();
    }
  }

  async function idle(): Promise<void> {
    while (flushing) await flushing;
  }

  return {
    completed(event, notification) {
      completions.push({ id: event.id, attempts: event.attempts, notification, event });
      scheduleFlush();
    },
    failed(...failed) {
      failures.push(...failed);
      scheduleFlush();
    },
    released(...events) {
      releases.push(...events);
      scheduleFlush();
    },
    get pending() {
      return queued() + writingCount;
    },
    async drain(timeoutMs) {
      scheduleFlush();
      if (!(await within(timeoutMs, idle()))) finalController.abort(new Error('shutdown deadline passed'));
      finalController.abort(new Error('worker stopped'));
    },
  };
}

/** What one write round needs; `signal` gives up on the database at the hard deadline. */
interface WriteContext {
  db: Db;
  workerId: string;
  logger: Logger;
  metrics: Metrics;
  signal: AbortSignal;
}

async function writeCompletions(
  { db, workerId, logger, metrics, signal }: WriteContext,
  batch: PendingCompletion[],
) {
  if (batch.length === 0) return;
  const done = await completeEvents(db, workerId, batch, { signal });
  const byId = new Map(batch.map((c) => [c.id, c]));
  for (const row of done) {
    metrics.eventsHandled.inc({ type: row.type, outcome: 'processed' });
    metrics.eventDeliveryLag.observe({ type: row.type }, Math.max(0, row.lagSeconds));
    const completion = byId.get(row.id);
    byId.delete(row.id);
    if (row.notified && completion?.notification) {
      logger.info(
        {
          eventId: row.id,
          orderId: completion.notification.orderId,
          customerId: completion.notification.customerId,
          channel: completion.notification.channel,
          attempt: completion.attempts,
          ...traceFields(completion.event),
        },
        'notification sent',
      );
    }
  }
  for (const lost of byId.values()) {
    logger.warn(
      { eventId: lost.id, attempt: lost.attempts },
      'lease lost before the outcome was written; the event is handled by its new claim',
    );
  }
}

async function writeFailures({ db, workerId, logger, metrics, signal }: WriteContext, batch: Failure[]) {
  if (batch.length === 0) return;
  const rows = await failEvents(db, workerId, batch, { signal });
  const byId = new Map(batch.map((f) => [f.id, f]));
  for (const row of rows) {
    const failure = byId.get(row.id)!;
    if (row.status === 'dead') {
      metrics.eventsHandled.inc({ type: row.type, outcome: 'dead' });
      logger.error(
        { eventId: row.id, type: row.type, attempts: failure.attempts, error: failure.error },
        'event dead-lettered: it needs an operator (`orders events retry`)',
      );
    } else {
      metrics.eventsHandled.inc({ type: row.type, outcome: 'retried' });
      logger.warn(
        {
          eventId: row.id,
          type: row.type,
          attempts: failure.attempts,
          retryInMs: failure.delayMs,
          error: failure.error,
        },
        'event handling failed; retrying later',
      );
    }
  }
}

async function writeReleases({ db, workerId, logger, signal }: WriteContext, batch: OutboxEvent[]) {
  if (batch.length === 0) return;
  const n = await releaseEvents(
    db,
    workerId,
    batch.map((event) => ({ id: event.id, attempts: event.attempts })),
    { signal },
  );
  logger.info({ released: n }, 'released claimed events for other workers');
}

/** The order request's trace id on the worker's log lines, as on the request's own lines. */
function traceFields(event: OutboxEvent): { traceId?: string } {
  const traceId = traceIdFromTraceparent(event.traceContext?.traceparent);
  return traceId ? { traceId } : {};
}
