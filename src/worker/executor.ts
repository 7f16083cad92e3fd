/**
 * Runs claimed events' handlers: each with an AbortSignal that fires at the handler timeout, when
 * the worker stops, or when the event's lease is lost, inside a span of the order request's trace.
 * Every run ends by reporting one outcome to the outcome writer: completed, failed (retry or dead
 * letter, decided here) or released (stopped by the worker, not the event's fault); except after
 * a lost lease, when the event's new claim decides and nothing is reported.
 */
import type { EventPublisher } from '../messaging/nats-publisher.js';
import type { Failure, OutboxEvent } from '../messaging/outbox.js';
import { abortable } from '../platform/abortable.js';
import { describeFailure, isRetryableFailure, PermanentError, TransientError } from '../platform/failures.js';
import type { Logger } from '../platform/logger.js';
import { within } from '../platform/shutdown.js';
import { context, extractContext, inSpan, SpanKind, type Telemetry, trace } from '../platform/telemetry.js';
import { backoffDelay } from './backoff.js';
import type { ClaimedEvent } from './claimer.js';
import type { EventHandler, EventHandlers } from './handlers.js';
import type { LeaseKeeper } from './leases.js';
import type { WorkerOptions } from './options.js';
import type { OutcomeWriter } from './outcome-writer.js';

export interface ExecutorDeps {
  options: Pick<WorkerOptions, 'handlerTimeoutMs' | 'maxAttempts' | 'backoff'>;
  handlers: EventHandlers;
  /** Each event is published here before its handler runs; null: not published. */
  publisher: EventPublisher | null;
  logger: Logger;
  telemetry: Telemetry;
  random: () => number;
  outcomes: Pick<OutcomeWriter, 'completed' | 'failed' | 'released'>;
  /** Whether the event's lease is still ours; once its outcome is known it is dropped. */
  leases: Pick<LeaseKeeper, 'holds' | 'drop'>;
  /** A handler finished: its slot is free. */
  onSettled: () => void;
}

export interface Executor {
  /** Runs the event's handler, unless its lease is no longer ours or about to lapse. */
  start(claimed: ClaimedEvent): void;
  /** These events' leases were lost: abort their handlers, report nothing. */
  abandon(eventIds: ReadonlySet<string>): void;
  /** Handlers running now. */
  readonly running: number;
  /**
   * Lets the running handlers finish within `timeoutMs`, then aborts them (their events are
   * released, so another worker takes them at once). The caller starts no event afterwards.
   */
  stop(timeoutMs: number): Promise<void>;
}

class StopAbort extends Error {
  override name = 'WorkerStopping';
}

class LeaseLost extends Error {
  override name = 'LeaseLost';
}

export function createExecutor(deps: ExecutorDeps): Executor {
  const { options, handlers, publisher, logger, telemetry, outcomes } = deps;
  const running = new Map<string, { done: Promise<void>; controller: AbortController }>();
  const stopController = new AbortController(); // aborts running handlers when the drain time is up

  function start({ event }: ClaimedEvent) {
    // The heartbeat keeps a held lease alive while the handler runs; one it can no longer vouch
    // for is given back rather than risk running the event beside its next claimant.
    if (!deps.leases.holds(event.id)) {
      deps.leases.drop(event.id);
      outcomes.released(event);
      return;
    }
    run(event);
  }

  function run(event: OutboxEvent) {
    const controller = new AbortController();
    const timer = setTimeout(() => {
      controller.abort(
        new TransientError(`the handler did not finish within ${options.handlerTimeoutMs} ms`),
      );
    }, options.handlerTimeoutMs);
    const onStop = () => controller.abort(stopController.signal.reason);
    stopController.signal.addEventListener('abort', onStop, { once: true });

    // Registered before it starts: a handler that fails synchronously still finds its entry.
    const entry = { done: Promise.resolve(), controller };
    running.set(event.id, entry);
    entry.done = (async () => {
      try {
        const handler = handlerFor(event.type);
        if (!handler) throw new PermanentError(`no handler for event type "${event.type}"`);
        const { signal } = controller;
        const result = await inEventSpan(telemetry, event, async () => {
          if (publisher) await abortable(publisher.publish(event, { signal }), signal);
          return abortable(handler(event, { signal, logger }), signal);
        });
        deps.leases.drop(event.id);
        outcomes.completed(event, result?.notification);
      } catch (error) {
        const reason: unknown = controller.signal.reason;
        deps.leases.drop(event.id);
        if (reason instanceof LeaseLost) {
          logger.debug({ eventId: event.id }, 'handler stopped: its lease was lost');
        } else if (reason instanceof StopAbort) {
          outcomes.released(event);
        } else {
          const cause = controller.signal.aborted ? controller.signal.reason : error;
          outcomes.failed(failureFor(event, cause));
        }
      } finally {
        clearTimeout(timer);
        stopController.signal.removeEventListener('abort', onStop);
        running.delete(event.id);
        deps.onSettled();
      }
    })();
  }

  /** Own properties only: an event type such as "constructor" has no handler. */
  function handlerFor(type: string): EventHandler | undefined {
    return Object.hasOwn(handlers, type) ? handlers[type] : undefined;
  }

  function failureFor(event: OutboxEvent, error: unknown): Failure {
    const retryable = isRetryableFailure(error);
    const dead = !retryable || event.attempts >= options.maxAttempts;
    return {
      id: event.id,
      attempts: event.attempts,
      dead,
      delayMs: dead ? 0 : backoffDelay(event.attempts, { ...options.backoff, random: deps.random }),
      error: describeFailure(error),
    };
  }

  return {
    start,
    abandon(eventIds) {
      for (const id of eventIds) {
        running
          .get(id)
          ?.controller.abort(new LeaseLost('the lease was lost: the next claim handles the event'));
      }
    },
    get running() {
      return running.size;
    },
    async stop(timeoutMs) {
      const inFlight = [...running.values()].map((r) => r.done);
      if (inFlight.length > 0 && !(await within(timeoutMs, Promise.all(inFlight)))) {
        logger.warn(
          { running: running.size },
          'handlers did not finish in time: aborting them and releasing their events',
        );
        stopController.abort(new StopAbort('the worker is stopping'));
        await Promise.all([...running.values()].map((r) => r.done));
      }
      stopController.abort(new StopAbort('the worker is stopping'));
    },
  };
}

/**
 * With tracing on, the handling is a consumer span in the order request's trace: a child of
 * the request on the first delivery; on a redelivery a new trace that links to the request
 * (a trace that keeps growing for hours of retries is unreadable).
 */
function inEventSpan<T>(telemetry: Telemetry, event: OutboxEvent, fn: () => Promise<T>): Promise<T> {
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
