/**
 * The customer notification each order event (created, confirmed, cancelled, shipped) triggers. Sending is simulated: it succeeds
 * unless NOTIFY_FAILURE_RATE says otherwise, which exercises the retry and dead-letter paths.
 *
 * "Exactly once" is an effect, not a delivery: the worker delivers at least once, and the
 * notification counts as sent when its row in `notifications` (keyed by the event id) is
 * inserted, in the transaction that marks the event processed. A real provider would receive
 * the event id as its idempotency key, so a send repeated after a crash is dropped there too.
 */
import { TransientError } from '../platform/failures.js';

export interface Notification {
  /** The event id: the idempotency key of the send and of the `notifications` row. */
  eventId: string;
  /** What happened (the event type): a real provider picks its message template by it. */
  event?: string;
  orderId: string;
  customerId: string;
  channel: string;
}

export interface Notifier {
  /** Sends one notification; rejects with a TransientError when the send may succeed later. */
  send(notification: Notification, options: { signal: AbortSignal }): Promise<void>;
}

export const NOTIFICATION_CHANNEL = 'email';

/** Fails a share `failureRate` (0..1) of sends on purpose: `random() < failureRate` fails. */
export function createSimulatedNotifier(options: { failureRate: number; random?: () => number }): Notifier {
  const random = options.random ?? Math.random;
  return {
    async send(_notification, { signal }) {
      signal.throwIfAborted();
      if (options.failureRate > 0 && random() < options.failureRate) {
        throw new TransientError(
          `simulated notification failure (NOTIFY_FAILURE_RATE=${options.failureRate}); it will be retried`,
        );
      }
    },
  };
}
