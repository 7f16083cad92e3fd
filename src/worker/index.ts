/**
 * The event worker: claims outbox events, runs their handlers, records the outcome.
 *
 * - The claimer (claimer.ts, its timing in claim-loop.ts) claims on wake-ups (the server pushes
 *   each committed event id) and on a backstop poller, coalesced into few rounds; it buffers
 *   what it claimed, and the new orders' events the server wrote already claimed (preClaim).
 * - The lease keeper (leases.ts) renews the short leases of what the worker holds with a
 *   heartbeat, and stops the handlers of leases it lost or could not renew in time.
 * - The executor (executor.ts) runs buffered events `concurrency` at a time, each with an
 *   AbortSignal and a timeout. A buffered event whose lease is no longer ours is given back.
 * - The outcome writer (outcome-writer.ts) records completions, failures and releases in batches.
 * - The housekeeper (housekeeping.ts) purges old processed events and inbox rows, and expired
 *   Idempotency-Keys.
 * - The inbound side (inbound.ts) consumes Catalog's and Payments' events from NATS (with
 *   natsUrl) into the inbox; what a consumed change publishes wakes the claimer. `receive`
 *   takes the partner simulator's messages down the same path without NATS.
 *
 * stop(): no more claims or pre-claims, the queue is closed, buffered events are released at
 * once (and those of order writes still in flight with a pre-claim, once they end), running
 * handlers get until the timeout, then are aborted and their events released (pending, due now,
 * the attempt given back), so another worker takes them immediately. A claim still running at
 * the drain deadline is cancelled, and what it returned anyway is released too. Leases are
 * renewed until the last outcome is written. The consumer stops fetching at once and gets the
 * same drain deadline for the messages it is handling; it never acks uncommitted work.
 */
import { type Context, ROOT_CONTEXT } from '@opentelemetry/api';
import type { ReceiveResult } from '../messaging/inbox.js';
import type { InboundMessage } from '../messaging/inbox-message.js';
import { createNatsPublisher, type EventPublisher } from '../messaging/nats-publisher.js';
import type { PreClaim } from '../messaging/outbox.js';
import type { Db } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import { within } from '../platform/shutdown.js';
import { context, disabledTelemetry, type Telemetry } from '../platform/telemetry.js';
import { createClaimer } from './claimer.js';
import { createExecutor } from './executor.js';
import { defaultHandlers, type EventHandlers, type HandlerOptions } from './handlers.js';
import { createHousekeeper, type Housekeeper } from './housekeeping.js';
import { createInbound } from './inbound.js';
import { createLeaseKeeper } from './leases.js';
import { registerOutboxGauges } from './metrics.js';
import { createSimulatedNotifier, type Notifier } from './notifier.js';
import type { WorkerOptions } from './options.js';
import { createOutcomeWriter } from './outcome-writer.js';

export type { ReceiveResult } from '../messaging/inbox.js';
export type { InboundMessage } from '../messaging/inbox-message.js';
export { defaultWorkerId, type WorkerOptions, workerOptionsFromConfig } from './options.js';

export interface WorkerDeps {
  db: Db;
  logger: Logger;
  metrics: Metrics;
  /** Resolved once by the command: see workerOptionsFromConfig. */
  options: WorkerOptions;
  /** The notification sender; default: simulated, failing `notifyFailureRate` of the sends. */
  notifier?: Notifier;
  /** Handlers by event type; default: each order event → notification. */
  handlers?: EventHandlers;
  /** Told about each new order by the default OrderCreated handler (SIMULATE_PARTNERS). */
  partners?: HandlerOptions['partners'];
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
  /**
   * A claim for a new event about to be written (see PreClaim). Undefined when the worker is not
   * running or has no room: the writer then writes the event pending and calls wake().
   */
  preClaim(): PreClaim | undefined;
  /**
   * Applies a consumed event (Catalog's, Payments') the way one from NATS is applied: the inbox,
   * its metrics and logs, a wake-up for what the change published. For the partner simulator
   * without NATS. Rejects on a transient failure (nothing committed).
   */
  receive(message: InboundMessage, options?: { signal?: AbortSignal }): Promise<ReceiveResult>;
  /**
   * Why the worker cannot deliver although it runs (its claim loop stalled: a claim hanging on
   * a dead connection, or failing), for /readyz; undefined when it is fine.
   */
  stalled(): string | undefined;
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
  const inbound = createInbound({
    db,
    logger: deps.logger.child({ workerId }),
    metrics,
    options,
    wake: (eventId) => claimer.wake(eventId),
    random,
  });

  const outcomes = createOutcomeWriter({ db, workerId, logger, metrics, random, onWritten: pump });
  const leases = createLeaseKeeper({
    db,
    workerId,
    logger,
    leaseMs: options.leaseMs,
    heartbeatMs: options.heartbeatMs,
    onLost: (ids) => {
      claimer.discard(ids);
      executor.abandon(ids);
    },
  });
  const executor = createExecutor({
    options,
    handlers: deps.handlers ?? defaultHandlers(notifier, { partners: deps.partners }),
    publisher,
    logger,
    telemetry,
    random,
    outcomes,
    leases,
    onSettled: pump,
  });
  const claimer = createClaimer({
    db,
    logger,
    random,
    options,
    heldElsewhere: () => executor.running + outcomes.pending,
    deadLetter: (failures) => outcomes.failed(...failures),
    leases,
    onClaimed: pump,
  });

  let state: 'created' | 'running' | 'stopping' | 'stopped' = 'created';
  let stopping: Promise<void> | undefined;
  // With tracing on, the worker's own statements run untraced (see start()).
  let quiet: Context | undefined;

  /** Starts buffered events while a slot is free; then the claimer may use the room left. */
  function pump() {
    while (state === 'running' && executor.running < options.concurrency) {
      const claimed = claimer.take();
      if (!claimed) break;
      executor.start(claimed);
    }
    claimer.poke();
  }

  /** Gives back what the claimer buffered: pending, due now, the attempt not counted. */
  function releaseBuffered() {
    const events = claimer.takeAll().map((claimed) => claimed.event);
    for (const event of events) leases.drop(event.id);
    if (events.length > 0) outcomes.released(...events);
  }

  /** Waits for a claim round in flight; at the drain deadline it is cancelled. */
  async function endClaiming(claiming: Promise<void>, drainDeadline: number, hardDeadline: number) {
    if (await within(msUntil(drainDeadline), claiming)) return;
    claimer.cancel();
    // The cancel lands at once, or the database layer gives up on the connection shortly after.
    if (!(await within(msUntil(hardDeadline), claiming))) {
      logger.warn('a claim did not end by the deadline: what it claimed waits for its lease to lapse');
    }
  }

  async function shutdown(timeoutMs: number) {
    const startedAt = Date.now();
    const hardDeadline = startedAt + Math.max(0, timeoutMs);
    // Keep a slice of the budget for writing outcomes and releasing claims.
    const drainDeadline = hardDeadline - Math.min(1_000, timeoutMs * 0.2);
    const wasRunning = state === 'running';
    state = 'stopping';
    const claiming = claimer.stop();
    const housekeeping = housekeeper?.stop();
    if (wasRunning) {
      logger.info({ timeoutMs, running: executor.running, buffered: claimer.buffered }, 'worker stopping');
      releaseBuffered();
      await Promise.all([
        endClaiming(claiming, drainDeadline, hardDeadline),
        executor.stop(msUntil(drainDeadline)),
        inbound.consumer?.stop({ timeoutMs: msUntil(drainDeadline) }),
        within(msUntil(drainDeadline), claimer.preClaimsSettled()).then((settled) => {
          if (!settled) logger.warn('an order write with a pre-claimed event did not end by the deadline');
        }),
      ]);
      releaseBuffered(); // what the last claim round returned, and the events adopted meanwhile
      await outcomes.drain(msUntil(hardDeadline));
    }
    await leases.stop();
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
          consuming: inbound.consumer !== undefined,
        },
        'worker started',
      );
      // With tracing on, the background statements (polls, batched writes, housekeeping) are
      // not traced: a span per poll would bury the traces that matter. Each event's handling
      // is traced in its own request's trace (the executor starts it from the event's context).
      quiet = telemetry.enabled
        ? (await import('@opentelemetry/core')).suppressTracing(ROOT_CONTEXT)
        : undefined;
      if (state !== 'running') return; // stopped while loading
      const begin = () => {
        claimer.start();
        leases.start();
        housekeeper?.start();
        inbound.consumer?.start();
      };
      if (quiet) context.with(quiet, begin);
      else begin();
    },
    stop({ timeoutMs }) {
      stopping ??= shutdown(timeoutMs);
      return stopping;
    },
    wake: (eventId) => claimer.wake(eventId),
    preClaim() {
      const claim = claimer.preClaim();
      if (!claim || !quiet) return claim;
      // adopt() runs in the request's context: what it starts (handlers, a claim round) must not.
      const untraced = quiet;
      return { ...claim, adopt: (event) => context.with(untraced, () => claim.adopt(event)) };
    },
    receive: (message, receiveOptions) => inbound.receive(message, receiveOptions),
    stalled() {
      const stalledMs = claimer.stalledForMs();
      if (stalledMs === 0) return undefined;
      return (
        `The worker has not completed a claim round for ${Math.round(stalledMs / 1000)} s ` +
        '(the database is unreachable or a connection hangs); it retries on its own.'
      );
    },
  };
}

function msUntil(deadline: number): number {
  return Math.max(0, deadline - Date.now());
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
