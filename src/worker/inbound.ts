/**
 * The worker's consuming side: Catalog's and Payments' events from NATS (when NATS_URL is set)
 * through the inbox into their orders. Every message, from NATS or handed in by the partner
 * simulator, takes the same path (`receive`): the inbox applies or records it, the outcome is
 * counted and logged, and the events the change wrote wake the worker's claimer at once (so
 * OrderConfirmed goes out in milliseconds, as OrderCreated does).
 */
import { type ReceiveResult, receive } from '../messaging/inbox.js';
import type { InboundMessage } from '../messaging/inbox-message.js';
import { createNatsConsumer, type NatsConsumer } from '../messaging/nats-consumer.js';
import type { Db } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import { backoffDelay } from './backoff.js';
import type { WorkerOptions } from './options.js';

export interface InboundDeps {
  db: Db;
  logger: Logger;
  metrics: Metrics;
  options: WorkerOptions;
  /** The worker's wake-up: an outbox event committed with a consumed event's change. */
  wake: (eventId: string) => void;
  random: () => number;
}

export interface Inbound {
  /** Applies one message as if it had arrived from NATS (the partner simulator without NATS). */
  receive(message: InboundMessage, options?: { signal?: AbortSignal }): Promise<ReceiveResult>;
  /** The NATS consumer, when NATS_URL is set and consuming is on. */
  consumer: NatsConsumer | undefined;
}

/**
 * Redeliveries after a transient failure wait like the outbox's retries, but at most a minute:
 * once the database is back, the partners' answers should not wait for the outbox's 5-minute cap.
 */
const MAX_REDELIVERY_DELAY_MS = 60_000;

export function createInbound(deps: InboundDeps): Inbound {
  const { db, metrics, options } = deps;
  const logger = deps.logger.child({ component: 'inbox' });
  const { inbound } = options;

  async function handle(message: InboundMessage, signal?: AbortSignal): Promise<ReceiveResult> {
    const result = await receive(db, message, {
      signal,
      metrics,
      onEventCommitted: deps.wake,
      subjectPrefix: inbound.subjectPrefix,
    });
    const { identity } = result;
    const fields = {
      source: identity.source,
      eventId: identity.id,
      type: identity.type,
      orderId: identity.orderId,
      deliveryCount: message.deliveryCount,
    };
    if (result.outcome === 'dead') {
      logger.warn(
        { ...fields, reason: result.reason },
        'a consumed event can never be applied: recorded dead (orders inbox retry applies it again)',
      );
    } else {
      logger.debug({ ...fields, outcome: result.outcome }, 'consumed event');
    }
    return result;
  }

  const consumer =
    options.natsUrl && inbound.enabled
      ? createNatsConsumer({
          url: options.natsUrl,
          logger: deps.logger,
          handle: async (message, signal) => {
            await handle(message, signal);
          },
          concurrency: options.concurrency,
          retryDelay: (deliveryCount) =>
            backoffDelay(deliveryCount, {
              baseMs: options.backoff.baseMs,
              maxMs: Math.min(options.backoff.maxMs, MAX_REDELIVERY_DELAY_MS),
              random: deps.random,
            }),
          ackWaitMs: inbound.ackWaitMs,
          subjectPrefix: inbound.subjectPrefix,
          streamSuffix: inbound.streamSuffix,
        })
      : undefined;

  return {
    receive: (message, receiveOptions) => handle(message, receiveOptions?.signal),
    consumer,
  };
}
