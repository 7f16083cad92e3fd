/**
 * Event handlers by event type. A handler performs the event's side effects and returns what
 * must be recorded with the event's completion; the worker records it in the same statement
 * that marks the event processed. Unknown types have no handler: a permanent failure.
 */
import { z } from 'zod';
import {
  ORDER_CANCELLED,
  ORDER_CONFIRMED,
  ORDER_CREATED,
  ORDER_SHIPPED,
  PUBLISHED_EVENTS,
  type PublishedEventType,
} from '../messaging/events.js';
import type { NotificationRecord, OutboxEvent } from '../messaging/outbox.js';
import type { PartnerSimulator } from '../messaging/partner-simulator.js';
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

/**
 * What a handler needs from the order stored as the event payload: the contract's own schema,
 * narrowed to those fields, so that events written before the order gained fields still pass.
 * Built once per type: building a zod schema (and its first parse, which compiles it) cost more
 * than the handler's parse itself when it was built per event.
 */
function buildPayloadSchema(type: PublishedEventType) {
  return PUBLISHED_EVENTS[type].pick({ id: true, customerId: true }).loose();
}

const payloadSchemas = new Map<PublishedEventType, ReturnType<typeof buildPayloadSchema>>();

function payloadSchema(type: PublishedEventType) {
  let schema = payloadSchemas.get(type);
  if (!schema) {
    schema = buildPayloadSchema(type);
    payloadSchemas.set(type, schema);
  }
  return schema;
}

/** The payload of an event, checked against the contract; a payload that fails never will pass. */
function parsePayload(type: PublishedEventType, event: OutboxEvent) {
  const parsed = payloadSchema(type).safeParse(event.payload);
  if (!parsed.success) {
    throw new PermanentError(`the ${type} payload is invalid: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

/**
 * Notify the customer (simulated) about the event's change: the order was received, confirmed,
 * cancelled or shipped. One notification per event: its row is keyed by the event id.
 */
export function createNotifyingHandler(
  type: PublishedEventType,
  notifier: Notifier,
  afterNotified?: (event: OutboxEvent, context: HandlerContext) => void,
): EventHandler {
  return async (event, context) => {
    const order = parsePayload(type, event);
    const notification: NotificationRecord = {
      orderId: order.id,
      customerId: order.customerId,
      channel: NOTIFICATION_CHANNEL,
    };
    await notifier.send({ eventId: event.id, event: type, ...notification }, { signal: context.signal });
    afterNotified?.(event, context);
    return { notification };
  };
}

/** OrderCreated: notify the customer (simulated) that the order was received. */
export function createOrderCreatedHandler(notifier: Notifier): EventHandler {
  return createNotifyingHandler(ORDER_CREATED, notifier);
}

export interface HandlerOptions {
  /**
   * Told about each new order once its OrderCreated notification went out (SIMULATE_PARTNERS).
   * It schedules and returns: it never throws nor blocks the handler.
   */
  partners?: Pick<PartnerSimulator, 'orderCreated'> | undefined;
}

export function defaultHandlers(notifier: Notifier, options: HandlerOptions = {}): EventHandlers {
  const { partners } = options;
  return {
    [ORDER_CREATED]: createNotifyingHandler(
      ORDER_CREATED,
      notifier,
      partners && ((event) => partners.orderCreated(event.payload, event.traceContext)),
    ),
    [ORDER_CONFIRMED]: createNotifyingHandler(ORDER_CONFIRMED, notifier),
    [ORDER_CANCELLED]: createNotifyingHandler(ORDER_CANCELLED, notifier),
    [ORDER_SHIPPED]: createNotifyingHandler(ORDER_SHIPPED, notifier),
  };
}
