/**
 * Event handlers by event type. A handler performs the event's side effects and returns what
 * must be recorded with the event's completion; the worker records it in the same statement
 * that marks the event processed. Unknown types have no handler: a permanent failure.
 */
import { z } from 'zod';
import { ORDER_CREATED } from '../messaging/events.js';
import type { NotificationRecord, OutboxEvent } from '../messaging/outbox.js';
import { PermanentError } from '../platform/failures.js';
import type { Logger } from '../platform/logger.js';
import { NOTIFICATION_CHANNEL, type Notifier } from './notifier.js';

export interface HandlerContext {
  /** Aborted when the handler times out or the worker stops: stop work and reject. */
  signal: AbortSignal;
  logger: Logger;
}

export interface HandlerResult {
  /** Recorded in `notifications` (keyed by the event id) when the event is marked processed. */
  notification?: NotificationRecord;
}

export type EventHandler = (
  event: OutboxEvent,
  context: HandlerContext,
) => Promise<HandlerResult | undefined>;
export type EventHandlers = Readonly<Record<string, EventHandler>>;

/** What the handler needs from the order JSON stored as the event payload. */
const OrderCreatedPayload = z.looseObject({ id: z.uuid(), customerId: z.string().min(1) });

/** OrderCreated: notify the customer (simulated) that the order was received. */
export function createOrderCreatedHandler(notifier: Notifier): EventHandler {
  return async (event, { signal }) => {
    const parsed = OrderCreatedPayload.safeParse(event.payload);
    if (!parsed.success) {
      throw new PermanentError(`the ${ORDER_CREATED} payload is invalid: ${z.prettifyError(parsed.error)}`);
    }
    const notification: NotificationRecord = {
      orderId: parsed.data.id,
      customerId: parsed.data.customerId,
      channel: NOTIFICATION_CHANNEL,
    };
    await notifier.send({ eventId: event.id, ...notification }, { signal });
    return { notification };
  };
}

export function defaultHandlers(notifier: Notifier): EventHandlers {
  return { [ORDER_CREATED]: createOrderCreatedHandler(notifier) };
}
