/**
 * The event worker: claims outbox events, runs their handlers, records the outcome.
 *
 * - The claimer (claimer.ts) decides when to claim: on wake-ups (the server pushes each committed
 *   event id) and on a backstop poller, coalesced into few rounds; it buffers what it claimed.
 * - The executor (executor.ts) runs buffered events `concurrency` at a time, each with an
 *   AbortSignal and a timeout shorter than the lease. A buffered event is only started while
 *   enough of its lease remains; otherwise it is given back.
 * - The outcome writer (outcome-writer.ts) records completions, failures and releases in batches.
 * - The housekeeper (housekeeping.ts) purges old processed events and expired Idempotency-Keys.
 *
 * stop(): no more claims, the queue is closed, buffered events are released at once, running
 * handlers get until the timeout, then are aborted and their events released (pending, due now,
 * the attempt given back), so another worker takes them immediately.
 */
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { createNatsPublisher, type EventPublisher } from '../messaging/nats-publisher.js';
import type { Db } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import { within } from '../platform/shutdown.js';
import { context, disabledTelemetry, type Telemetry } from '../platform/telemetry.js';
import { createClaimer } from './claimer.js';
import { createExecutor } from './executor.js';
import { defaultHandlers, type EventHandlers } from './handlers.js';
import { createHousekeeper, type Housekeeper } from './housekeeping.js';
import { registerOutboxGauges } from './metrics.js';
import { createSimulatedNotifier, type Notifier } from './notifier.js';
import type { WorkerOptions } from './options.js';
import { createOutcomeWriter } from './outcome-writer.js';

export { defaultWorkerId, type WorkerOptions, workerOptionsFromConfig } from './options.js';

export interface WorkerDeps {
  db: Db;
  logger: Logger;
  metrics: Metrics;
  /** Resolved once by the command: see workerOptionsFromConfig. */
  options: WorkerOptions;
  /** The notification sender; default: simulated, failing `notifyFailureRate` of the sends. */
  notifier?: Notifier;
  /** Handlers by event type; default: OrderCreated → notification. */
  handlers?: EventHandlers;
  /** Where events are also published; default: NATS JetStream when `natsUrl` is set. null: none. */
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

export function createWorker(deps: WorkerDeps): Worker {
  const { db, metrics, options } = deps;
  const { workerId } = options;
  const logger = deps.logger.child({ component: 'worker', workerId });
  const random = deps.random ?? Math.random;
  const telemetry = deps.telemetry ?? disabledTelemetry();

  const notifier =
    deps.notifier ?? createSimulatedNotifier({ failureRate: options.notifyFailureRate, random });
  // The worker closes the publisher it created; one handed in belongs to the caller.
  const ownsPublisher = deps.publisher === undefined;
  const publisher = deps.publisher !== undefined ? deps.publisher : natsPublisher(options, logger);
  const housekeeper = housekeeperFor(db, options, logger);

  const outcomes = createOutcomeWriter({ db, workerId, logger, metrics, random, onWritten: pump });
  const executor = createExecutor({
    options,
    handlers: deps.handlers ?? defaultHandlers(notifier),
    publisher,
    logger,
    telemetry,
    random,
    outcomes,
    onSettled: pump,
  });
  const claimer = createClaimer({
    db,
    logger,
    random,
    options,
    heldElsewhere: () => executor.running + outcomes.pending,
    deadLetter: (failures) => outcomes.failed(...failures),
    onClaimed: pump,
  });

  let state: 'created' | 'running' | 'stopping' | 'stopped' = 'created';
  let stopping: Promise<void> | undefined;

  /** Starts buffered events while a slot is free; then the claimer may use the room left. */
  function pump() {
    while (state === 'running' && executor.running < options.concurrency) {
      const claimed = claimer.take();
      if (!claimed) break;
      executor.start(claimed);
    }
    claimer.poke();
  }

  async function shutdown(timeoutMs: number) {
    const startedAt = Date.now();
    const hardDeadline = startedAt + Math.max(0, timeoutMs);
    // Keep a slice of the budget for writing outcomes and releasing claims.
    const drainDeadline = hardDeadline - Math.min(1_000, timeoutMs * 0.2);
    const left = (deadline: number) => Math.max(0, deadline - Date.now());
    const wasRunning = state === 'running';
    state = 'stopping';
    const claiming = claimer.stop();
    const housekeeping = housekeeper?.stop();
    if (wasRunning) {
      logger.info({ timeoutMs, running: executor.running, buffered: claimer.buffered }, 'worker stopping');
      // A claim round in flight completes (it is short); what it claimed is released below.
      await within(left(drainDeadline), claiming);
      outcomes.released(...claimer.takeAll().map((claimed) => claimed.event));
      await executor.stop(left(drainDeadline));
      await outcomes.drain(left(hardDeadline));
    }
    await Promise.all([
      housekeeping,
      (ownsPublisher ? publisher?.close() : undefined)?.catch((error: unknown) =>
        logger.warn({ err: error }, 'closing the NATS publisher failed'),
      ),
    ]);
    state = 'stopped';
    if (wasRunning) {
      logger.info({ tookMs: Date.now() - startedAt, droppedWakes: claimer.droppedWakes }, 'worker stopped');
    }
  }

  return {
    id: workerId,
    async start() {
      if (state !== 'created') return;
      state = 'running';
      registerOutboxGauges(metrics, db, deps.logger);
      logger.info(
        {
          concurrency: options.concurrency,
          batchSize: options.batchSize,
          maxAttempts: options.maxAttempts,
          leaseMs: options.leaseMs,
          pollIntervalMs: options.pollIntervalMs,
          nats: publisher ? options.natsStream : false,
        },
        'worker started',
      );
      // With tracing on, the background statements (polls, batched writes, housekeeping) are
      // not traced: a span per poll would bury the traces that matter. Each event's handling
      // is traced in its own request's trace (the executor starts it from the event's context).
      const quiet = telemetry.enabled
        ? (await import('@opentelemetry/core')).suppressTracing(ROOT_CONTEXT)
        : undefined;
      if (state !== 'running') return; // stopped while loading
      const begin = () => {
        claimer.start();
        housekeeper?.start();
      };
      if (quiet) context.with(quiet, begin);
      else begin();
    },
    stop({ timeoutMs }) {
      stopping ??= shutdown(timeoutMs);
      return stopping;
    },
    wake: (eventId) => claimer.wake(eventId),
  };
}

/** None when natsUrl is unset. */
function natsPublisher(options: WorkerOptions, logger: Logger): EventPublisher | null {
  if (!options.natsUrl) return null;
  return createNatsPublisher({
    url: options.natsUrl,
    logger,
    streamName: options.natsStream,
    subjectPrefix: options.natsSubjectPrefix,
  });
}

/** None when housekeepingIntervalMs is 0. */
function housekeeperFor(db: Db, options: WorkerOptions, logger: Logger): Housekeeper | undefined {
  if (!(options.housekeepingIntervalMs > 0)) return undefined;
  return createHousekeeper({
    db,
    logger,
    retentionMs: options.retentionMs,
    batchSize: options.housekeepingBatchSize,
    intervalMs: options.housekeepingIntervalMs,
  });
}
