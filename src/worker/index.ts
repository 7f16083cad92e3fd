/**
 * The event worker: claims outbox events, runs their handlers, records the outcome.
 *
 * - Claims are leases taken with `FOR UPDATE SKIP LOCKED` by status (see messaging/outbox), in batches
 *   of WORKER_BATCH_SIZE, so any number of workers and replicas share the table safely.
 * - Two triggers start a claim round: a wake-up (the server pushed a committed event id into the
 *   in-process queue) and a backstop poller (every pollIntervalMs, slowing down while idle or
 *   failing, and never sleeping past the next known due time). Triggers coalesce: however many
 *   wake-ups arrive during a round, they cause one more round, which claims their ids together.
 * - Claimed events wait in a local buffer and run WORKER_CONCURRENCY at a time, each with an
 *   AbortSignal and a timeout shorter than the lease. A buffered event is only started while
 *   enough of its lease remains; otherwise it is given back.
 * - Outcomes are flushed in batches by one flusher (group-commit style): successes in one
 *   statement that also records notifications, failures (retry with backoff, or dead letter)
 *   in another, releases in a third.
 * - stop(): no more claims, the queue is closed, buffered events are released at once, running
 *   handlers get until the timeout, then are aborted and their events released (pending, due
 *   now, the attempt given back), so another worker takes them immediately.
 */
import { hostname } from 'node:os';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import type { Config } from '../config.js';
import { DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX } from '../messaging/events.js';
import { createNatsPublisher, type EventPublisher } from '../messaging/nats-publisher.js';
import {
  type Completion,
  claimEvents,
  completeEvents,
  type Failure,
  failEvents,
  type OutboxEvent,
  releaseEvents,
} from '../messaging/outbox.js';
import { abortable } from '../platform/abortable.js';
import type { Db } from '../platform/db.js';
import { describeFailure, isRetryableFailure, PermanentError, TransientError } from '../platform/failures.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import { sleep, within } from '../platform/shutdown.js';
import {
  context,
  disabledTelemetry,
  extractContext,
  inSpan,
  SpanKind,
  type Telemetry,
  trace,
  traceIdFromTraceparent,
} from '../platform/telemetry.js';
import { uuidv7 } from '../platform/uuid.js';
import { backoffDelay } from './backoff.js';
import { defaultHandlers, type EventHandlers } from './handlers.js';
import { createHousekeeper } from './housekeeping.js';
import { registerOutboxGauges } from './metrics.js';
import { createSimulatedNotifier, type Notifier } from './notifier.js';
import { createEventQueue } from './wake-up-queue.js';

export interface WorkerOptions {
  /** Written to `locked_by`; unique per worker (default host:pid:random). */
  workerId: string;
  /** How long a claim is valid. A crashed worker's events are re-claimed after it. */
  leaseMs: number;
  /** A handler running longer is aborted and its event retried; must be below leaseMs. */
  handlerTimeoutMs: number;
  /** The backstop poll interval while events keep coming. */
  pollIntervalMs: number;
  /** Idle polls slow down (×2 per empty poll) up to this. */
  maxIdlePollIntervalMs: number;
  /** Claim failures (database down) back off up to this. */
  maxErrorBackoffMs: number;
  /** Wake-ups arriving within this window after a claim round wait and share the next round. */
  wakeCoalesceMs: number;
  /** Processed events older than this are purged with their notifications. */
  retentionMs: number;
  /** Time between housekeeping runs; 0 disables housekeeping. */
  housekeepingIntervalMs: number;
  housekeepingBatchSize: number;
  /** Wake-ups held at most by the in-process queue; more are dropped (the poller finds them). */
  queueCapacity: number;
  /** JetStream stream and subject prefix (injectable so test runs do not collide). */
  natsStream: string;
  natsSubjectPrefix: string;
}

export interface WorkerDeps {
  db: Db;
  logger: Logger;
  metrics: Metrics;
  config: Config;
  options?: Partial<WorkerOptions>;
  /** The notification sender; default: simulated, failing NOTIFY_FAILURE_RATE of the sends. */
  notifier?: Notifier;
  /** Handlers by event type; default: OrderCreated → notification. */
  handlers?: EventHandlers;
  /** Where events are also published; default: NATS JetStream when NATS_URL is set. null: none. */
  publisher?: EventPublisher | null;
  /** Uniform [0, 1) source for jitter and the simulated failures. */
  random?: () => number;
  /** Tracing: each event's handling becomes a span in its order request's trace. */
  telemetry?: Telemetry;
}

export interface Worker {
  /** Starts claiming (wake-ups and the backstop poller). */
  start(): Promise<void>;
  /** Stops claiming; lets in-flight handlers finish within timeoutMs, then aborts and releases them. */
  stop(options: { timeoutMs: number }): Promise<void>;
  /** Called after an order's transaction committed: handle this event now. Never throws. */
  wake(eventId: string): void;
  readonly id: string;
}

const DAY_MS = 86_400_000;

export function defaultWorkerId(): string {
  return `${hostname()}:${process.pid}:${uuidv7().slice(-8)}`;
}

export function resolveWorkerOptions(overrides: Partial<WorkerOptions> = {}): WorkerOptions {
  const leaseMs = overrides.leaseMs ?? 60_000;
  const pollIntervalMs = overrides.pollIntervalMs ?? 1_000;
  const options: WorkerOptions = {
    workerId: overrides.workerId ?? defaultWorkerId(),
    leaseMs,
    handlerTimeoutMs: overrides.handlerTimeoutMs ?? Math.min(30_000, Math.floor(leaseMs / 2)),
    pollIntervalMs,
    maxIdlePollIntervalMs: overrides.maxIdlePollIntervalMs ?? Math.max(2_000, pollIntervalMs),
    maxErrorBackoffMs: overrides.maxErrorBackoffMs ?? 30_000,
    wakeCoalesceMs: overrides.wakeCoalesceMs ?? 5,
    retentionMs: overrides.retentionMs ?? 7 * DAY_MS,
    housekeepingIntervalMs: overrides.housekeepingIntervalMs ?? 60_000,
    housekeepingBatchSize: overrides.housekeepingBatchSize ?? 1_000,
    queueCapacity: overrides.queueCapacity ?? 10_000,
    natsStream: overrides.natsStream ?? DEFAULT_STREAM,
    natsSubjectPrefix: overrides.natsSubjectPrefix ?? DEFAULT_SUBJECT_PREFIX,
  };
  if (!(options.handlerTimeoutMs > 0 && options.handlerTimeoutMs < options.leaseMs)) {
    throw new RangeError(
      'handlerTimeoutMs must be positive and below leaseMs (a handler must end within its lease)',
    );
  }
  if (!(options.pollIntervalMs > 0) || options.maxIdlePollIntervalMs < options.pollIntervalMs) {
    throw new RangeError('pollIntervalMs must be positive and at most maxIdlePollIntervalMs');
  }
  return options;
}

/** A claimed event and when (local monotonic clock, before the claim was sent) its lease began. */
interface Held {
  event: OutboxEvent;
  claimedAt: number;
}

interface Running {
  held: Held;
  controller: AbortController;
  done: Promise<void>;
}

class StopAbort extends Error {
  override name = 'WorkerStopping';
}

export function createWorker(deps: WorkerDeps): Worker {
  const { db, metrics, config } = deps;
  const options = resolveWorkerOptions(deps.options);
  const workerId = options.workerId;
  const logger = deps.logger.child({ component: 'worker', workerId });
  const random = deps.random ?? Math.random;
  const telemetry = deps.telemetry ?? disabledTelemetry();
  const concurrency = config.WORKER_CONCURRENCY;
  const batchSize = config.WORKER_BATCH_SIZE;
  const maxAttempts = config.WORKER_MAX_ATTEMPTS;
  // Claim again when fewer than this many events wait locally, so handlers never starve.
  const lowWater = Math.max(1, Math.min(concurrency, batchSize));
  // Events held at once (buffered, running, or waiting for their outcome to be written). Room
  // for two batches lets the next claim overlap the previous batch's outcome write, so a busy
  // pool costs one wait per batch instead of two.
  const maxHeld = 2 * batchSize + concurrency;
  const maxWoken = options.queueCapacity;

  const notifier =
    deps.notifier ?? createSimulatedNotifier({ failureRate: config.NOTIFY_FAILURE_RATE, random });
  const handlers = deps.handlers ?? defaultHandlers(notifier);
  // The worker closes the publisher it created; one handed in belongs to the caller.
  const ownsPublisher = deps.publisher === undefined;
  const publisher: EventPublisher | null =
    deps.publisher !== undefined
      ? deps.publisher
      : config.NATS_URL
        ? createNatsPublisher({
            url: config.NATS_URL,
            logger,
            streamName: options.natsStream,
            subjectPrefix: options.natsSubjectPrefix,
          })
        : null;
  const housekeeper =
    options.housekeepingIntervalMs > 0
      ? createHousekeeper({
          db,
          logger,
          retentionMs: options.retentionMs,
          batchSize: options.housekeepingBatchSize,
          intervalMs: options.housekeepingIntervalMs,
        })
      : undefined;

  const queue = createEventQueue<string>({ capacity: options.queueCapacity });
  const woken = new Set<string>();
  const buffer: Held[] = [];
  const running = new Map<string, Running>();
  let completions: (Completion & { held: Held })[] = [];
  let failures: (Failure & { type: string })[] = [];
  let releases: Held[] = [];
  let flushingCount = 0;
  let flushing: Promise<void> | undefined;
  let flushFailures = 0;

  let state: 'created' | 'running' | 'stopping' | 'stopped' = 'created';
  let stopping: Promise<void> | undefined;
  const stopController = new AbortController(); // aborts running handlers when the drain time is up
  const finalController = new AbortController(); // gives up on the database at the hard deadline

  let claimRequested = true;
  let claimBlockedUntil = 0;
  let lastClaimStartedAt = 0;
  let lastClaimWasFull = false;
  let claimFailures = 0;
  let idlePolls = 0;
  let kickWaiter: (() => void) | undefined;
  let pollTimer: NodeJS.Timeout | undefined;
  let claimLoopDone: Promise<void> = Promise.resolve();
  let wakeLoopDone: Promise<void> = Promise.resolve();
  let droppedWakes = 0;

  const heldCount = () =>
    buffer.length + running.size + completions.length + failures.length + releases.length + flushingCount;

  function kick() {
    const waiter = kickWaiter;
    kickWaiter = undefined;
    waiter?.();
  }

  function requestClaim() {
    claimRequested = true;
    kick();
  }

  function canClaim() {
    return (
      state === 'running' &&
      Date.now() >= claimBlockedUntil &&
      buffer.length < lowWater &&
      heldCount() < maxHeld
    );
  }

  function schedulePoll(delayMs: number) {
    clearTimeout(pollTimer);
    if (state !== 'running') return;
    pollTimer = setTimeout(requestClaim, Math.max(1, Math.round(delayMs)));
    pollTimer.unref();
  }

  async function claimLoop() {
    while (state === 'running') {
      if (claimRequested && canClaim()) {
        // Wake-ups arriving a few ms apart share a round instead of each paying for one.
        const sinceLast = performance.now() - lastClaimStartedAt;
        if (!lastClaimWasFull && sinceLast < options.wakeCoalesceMs) {
          await sleep(options.wakeCoalesceMs - sinceLast, stopController.signal);
          if (state !== 'running') break;
        }
        claimRequested = false;
        await claimRound();
        continue;
      }
      // Nothing to do until a wake-up, the poll timer, a freed slot or stop() kicks us.
      await new Promise<void>((resolve) => {
        kickWaiter = resolve;
      });
    }
  }

  function takeWoken(limit: number): string[] {
    const ids: string[] = [];
    for (const id of woken) {
      if (ids.length >= limit) break;
      ids.push(id);
      woken.delete(id);
    }
    return ids;
  }

  async function claimRound() {
    const limit = Math.min(batchSize - buffer.length, maxHeld - heldCount());
    if (limit <= 0) return;
    const wokenIds = takeWoken(limit);
    const claimedAt = performance.now();
    lastClaimStartedAt = claimedAt;
    try {
      const { events, nextDueInMs } = await claimEvents(db, {
        workerId,
        limit,
        leaseMs: options.leaseMs,
        wokenIds,
      });
      if (claimFailures > 0) logger.info({ after: claimFailures }, 'claiming events works again');
      claimFailures = 0;
      lastClaimWasFull = events.length >= limit;
      // More may be due, or woken ids are still waiting for their round.
      if (lastClaimWasFull || woken.size > 0) claimRequested = true;
      for (const event of events) {
        if (event.attempts > maxAttempts) {
          // Its previous attempts never ended (the worker crashed or hung past its lease).
          failures.push({
            id: event.id,
            type: event.type,
            attempts: event.attempts,
            dead: true,
            delayMs: 0,
            error:
              `attempt ${event.attempts} exceeds WORKER_MAX_ATTEMPTS (${maxAttempts}): the previous attempt's ` +
              'lease expired before it finished (its worker crashed or hung)',
          });
          continue;
        }
        buffer.push({ event, claimedAt });
      }
      if (failures.length > 0) scheduleFlush();
      idlePolls = events.length > 0 ? 0 : idlePolls + 1;
      const idleDelay = Math.min(
        options.maxIdlePollIntervalMs,
        options.pollIntervalMs * 2 ** Math.max(0, Math.min(idlePolls - 1, 20)),
      );
      schedulePoll(nextDueInMs === null ? idleDelay : Math.min(idleDelay, nextDueInMs + 5));
      pump();
    } catch (error) {
      for (const id of wokenIds) woken.add(id);
      claimFailures++;
      const delay = backoffDelay(claimFailures, {
        baseMs: options.pollIntervalMs,
        maxMs: options.maxErrorBackoffMs,
        random,
      });
      claimBlockedUntil = Date.now() + delay;
      if (claimFailures === 1 || claimFailures % 10 === 0) {
        logger.warn(
          { err: error, failures: claimFailures, retryInMs: delay },
          'claiming events failed; retrying',
        );
      }
      schedulePoll(delay);
    }
  }

  function pump() {
    while (state === 'running' && running.size < concurrency && buffer.length > 0) {
      const held = buffer.shift()!;
      // Start only while the lease still covers a whole handler run (plus a margin for
      // writing the outcome); otherwise give the event back rather than risk running it twice.
      const leaseLeft = options.leaseMs - (performance.now() - held.claimedAt);
      if (leaseLeft < options.handlerTimeoutMs + Math.min(5_000, options.leaseMs / 10)) {
        releases.push(held);
        scheduleFlush();
        continue;
      }
      execute(held);
    }
    if (claimRequested && canClaim()) kick();
  }

  function execute(held: Held) {
    const { event } = held;
    const controller = new AbortController();
    const timer = setTimeout(() => {
      controller.abort(
        new TransientError(`the handler did not finish within ${options.handlerTimeoutMs} ms`),
      );
    }, options.handlerTimeoutMs);
    const onStop = () => controller.abort(stopController.signal.reason);
    stopController.signal.addEventListener('abort', onStop, { once: true });

    // Registered before it starts: a handler that fails synchronously still finds its entry.
    const entry: Running = { held, controller, done: Promise.resolve() };
    running.set(event.id, entry);
    entry.done = (async () => {
      try {
        const handler = handlers[event.type];
        if (!handler) throw new PermanentError(`no handler for event type "${event.type}"`);
        const { signal } = controller;
        const result = await inEventSpan(event, async () => {
          if (publisher) await abortable(publisher.publish(event, { signal }), signal);
          return abortable(handler(event, { signal, logger }), signal);
        });
        completions.push({
          id: event.id,
          attempts: event.attempts,
          notification: result?.notification,
          held,
        });
      } catch (error) {
        if (controller.signal.reason instanceof StopAbort) {
          releases.push(held);
        } else {
          const cause = controller.signal.aborted ? controller.signal.reason : error;
          failures.push(failureFor(event, cause));
        }
      } finally {
        clearTimeout(timer);
        stopController.signal.removeEventListener('abort', onStop);
        running.delete(event.id);
        scheduleFlush();
        pump();
      }
    })();
  }

  /**
   * With tracing on, the handling is a consumer span in the order request's trace: a child of
   * the request on the first delivery; on a redelivery a new trace that links to the request
   * (a trace that keeps growing for hours of retries is unreadable).
   */
  function inEventSpan<T>(event: OutboxEvent, fn: () => Promise<T>): Promise<T> {
    if (!telemetry.enabled) return fn();
    const origin = extractContext(event.traceContext ?? {});
    const originSpan = trace.getSpanContext(origin);
    const redelivery = event.attempts > 1 && originSpan !== undefined;
    const run = () =>
      inSpan(
        telemetry,
        `${event.type} process`,
        {
          kind: SpanKind.CONSUMER,
          attributes: {
            'messaging.system': 'orders-outbox',
            'messaging.operation.type': 'process',
            'messaging.message.id': event.id,
            'orders.event.attempt': event.attempts,
          },
          root: redelivery,
          links: redelivery ? [{ context: originSpan }] : undefined,
        },
        fn,
      );
    // A fresh context (not the worker's untraced one): the request's trace, or a new one.
    return context.with(origin, run);
  }

  function failureFor(event: OutboxEvent, error: unknown): Failure & { type: string } {
    const retryable = isRetryableFailure(error);
    const dead = !retryable || event.attempts >= maxAttempts;
    return {
      id: event.id,
      type: event.type,
      attempts: event.attempts,
      dead,
      delayMs: dead
        ? 0
        : backoffDelay(event.attempts, {
            baseMs: config.WORKER_BACKOFF_BASE_MS,
            maxMs: config.WORKER_BACKOFF_MAX_MS,
            random,
          }),
      error: describeFailure(error),
    };
  }

  function scheduleFlush() {
    flushing ??= flushLoop().finally(() => {
      flushing = undefined;
      // Work may have arrived between the loop's last check and now.
      if (completions.length + failures.length + releases.length > 0) scheduleFlush();
      else pump();
    });
  }

  async function flushLoop() {
    while (completions.length + failures.length + releases.length > 0) {
      if (finalController.signal.aborted) {
        const dropped = completions.length + failures.length + releases.length;
        logger.warn(
          { dropped },
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
      flushingCount = batch.completions.length + batch.failures.length + batch.releases.length;
      const results = await Promise.allSettled([
        writeCompletions(batch.completions),
        writeFailures(batch.failures),
        writeReleases(batch.releases),
      ]);
      flushingCount = 0;
      const [c, f, r] = results;
      let failed = false;
      if (c.status === 'rejected') {
        completions.push(...batch.completions);
        failed = true;
      }
      if (f.status === 'rejected') {
        failures.push(...batch.failures);
        failed = true;
      }
      if (r.status === 'rejected') {
        releases.push(...batch.releases);
        failed = true;
      }
      if (failed) {
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
      pump();
    }
  }

  async function writeCompletions(batch: (Completion & { held: Held })[]) {
    if (batch.length === 0) return;
    const done = await completeEvents(db, workerId, batch, { signal: finalController.signal });
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
            ...traceFields(completion.held.event),
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

  async function writeFailures(batch: (Failure & { type: string })[]) {
    if (batch.length === 0) return;
    const rows = await failEvents(db, workerId, batch, { signal: finalController.signal });
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

  async function writeReleases(batch: Held[]) {
    if (batch.length === 0) return;
    const n = await releaseEvents(
      db,
      workerId,
      batch.map((h) => ({ id: h.event.id, attempts: h.event.attempts })),
      { signal: finalController.signal },
    );
    logger.info({ released: n }, 'released claimed events for other workers');
  }

  async function wakeLoop() {
    for await (const ids of queue) {
      for (const id of ids) {
        if (woken.size < maxWoken) woken.add(id);
      }
      requestClaim();
    }
  }

  async function idle(): Promise<void> {
    while (flushing) await flushing;
  }

  async function shutdown(timeoutMs: number) {
    const startedAt = Date.now();
    const hardDeadline = startedAt + Math.max(0, timeoutMs);
    // Keep a slice of the budget for writing outcomes and releasing claims.
    const drainDeadline = hardDeadline - Math.min(1_000, timeoutMs * 0.2);
    const left = (deadline: number) => Math.max(0, deadline - Date.now());
    const wasRunning = state === 'running';
    state = 'stopping';
    queue.close();
    clearTimeout(pollTimer);
    kick();
    const housekeeping = housekeeper?.stop();
    if (wasRunning) {
      logger.info({ timeoutMs, running: running.size, buffered: buffer.length }, 'worker stopping');
      // A claim round in flight completes (it is short); what it claimed is released below.
      await within(left(drainDeadline), Promise.all([claimLoopDone, wakeLoopDone]));
      releases.push(...buffer.splice(0));
      scheduleFlush();
      const inFlight = [...running.values()].map((r) => r.done);
      if (inFlight.length > 0 && !(await within(left(drainDeadline), Promise.all(inFlight)))) {
        logger.warn(
          { running: running.size },
          'handlers did not finish in time: aborting them and releasing their events',
        );
        stopController.abort(new StopAbort('the worker is stopping'));
        await Promise.all([...running.values()].map((r) => r.done));
      }
      stopController.abort(new StopAbort('the worker is stopping'));
      scheduleFlush();
      if (!(await within(left(hardDeadline), idle())))
        finalController.abort(new Error('shutdown deadline passed'));
    }
    finalController.abort(new Error('worker stopped'));
    await Promise.all([
      housekeeping,
      (ownsPublisher ? publisher?.close() : undefined)?.catch((error: unknown) =>
        logger.warn({ err: error }, 'closing the NATS publisher failed'),
      ),
    ]);
    state = 'stopped';
    if (wasRunning) logger.info({ tookMs: Date.now() - startedAt, droppedWakes }, 'worker stopped');
  }

  return {
    id: workerId,
    async start() {
      if (state !== 'created') return;
      state = 'running';
      registerOutboxGauges(metrics, db, deps.logger);
      logger.info(
        {
          concurrency,
          batchSize,
          maxAttempts,
          leaseMs: options.leaseMs,
          pollIntervalMs: options.pollIntervalMs,
          nats: publisher ? options.natsStream : false,
        },
        'worker started',
      );
      // With tracing on, the background statements (polls, batched writes, housekeeping) are
      // not traced: a span per poll would bury the traces that matter. Each event's handling
      // is traced in its own request's trace (inEventSpan starts from the event's context).
      const quiet = telemetry.enabled
        ? (await import('@opentelemetry/core')).suppressTracing(ROOT_CONTEXT)
        : undefined;
      if (state !== 'running') return; // stopped while loading
      const begin = () => {
        claimRequested = true;
        claimLoopDone = claimLoop().catch((error: unknown) => {
          logger.error({ err: error }, 'the claim loop failed; the worker no longer claims events');
        });
        wakeLoopDone = wakeLoop();
        housekeeper?.start();
      };
      if (quiet) context.with(quiet, begin);
      else begin();
    },
    stop({ timeoutMs }) {
      stopping ??= shutdown(timeoutMs);
      return stopping;
    },
    wake(eventId) {
      try {
        if (!queue.push(eventId) && !queue.closed) droppedWakes++;
      } catch {
        // Never throws into the request path: the poller is the safety net.
      }
    },
  };
}

/** The order request's trace id on the worker's log lines, as on the request's own lines. */
function traceFields(event: OutboxEvent): { traceId?: string } {
  const traceId = traceIdFromTraceparent(event.traceContext?.traceparent);
  return traceId ? { traceId } : {};
}
