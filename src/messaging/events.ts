/**
 * The event contract, in one module: which events exist, the statuses an event moves through,
 * their payload schemas, the envelope they travel in and where they are published. The outbox,
 * the NATS transport, the worker's handlers, the HTTP and CLI views and the bench all build on
 * these names; nothing else spells them out.
 */
import { z } from 'zod';
import { Order } from '../orders/schemas.js';

/** Every status an outbox event can be in, in the order it moves through them. */
export const EVENT_STATUSES = ['pending', 'processing', 'processed', 'dead'] as const;
export const EventStatus = z.enum(EVENT_STATUSES);
export type EventStatus = z.infer<typeof EventStatus>;

export const ORDER_CREATED = 'OrderCreated';
export const ORDER_CONFIRMED = 'OrderConfirmed';
export const ORDER_CANCELLED = 'OrderCancelled';
export const ORDER_SHIPPED = 'OrderShipped';

/**
 * The events the service publishes, each with the schema of its `data`: the order as it is after
 * the change (for OrderCreated, the 201 body itself: one serialisation for both).
 */
export const PUBLISHED_EVENTS = {
  [ORDER_CREATED]: Order,
  [ORDER_CONFIRMED]: Order,
  [ORDER_CANCELLED]: Order,
  [ORDER_SHIPPED]: Order,
} as const;
export type PublishedEventType = keyof typeof PUBLISHED_EVENTS;
export type OrderCreatedPayload = z.infer<(typeof PUBLISHED_EVENTS)[typeof ORDER_CREATED]>;

/** CloudEvents `source` of everything the service publishes. */
export const EVENT_SOURCE = 'orders';

const OrderRef = z.uuid('must be an order id (UUID)');

/**
 * The events the service consumes (Catalog's and Payments'), each with the subject it arrives on
 * and the schema of its `data`. Anything else on those subjects is a permanent failure.
 */
export const CONSUMED_EVENTS = {
  StockReserved: {
    subject: 'catalog.events.StockReserved',
    data: z.looseObject({ orderId: OrderRef }),
  },
  StockRejected: {
    subject: 'catalog.events.StockRejected',
    data: z.looseObject({ orderId: OrderRef, reason: z.string().max(500) }),
  },
  PaymentCaptured: {
    subject: 'payments.events.PaymentCaptured',
    data: z.looseObject({
      orderId: OrderRef,
      paymentId: z.string().min(1).max(200),
      amount: z.int().min(0),
      currency: z.string().regex(/^[A-Z]{3}$/),
    }),
  },
  PaymentFailed: {
    subject: 'payments.events.PaymentFailed',
    data: z.looseObject({
      orderId: OrderRef,
      paymentId: z.string().min(1).max(200),
      reason: z.string().max(500),
    }),
  },
} as const;
export type ConsumedEventType = keyof typeof CONSUMED_EVENTS;
export type ConsumedEventData<T extends ConsumedEventType> = z.infer<(typeof CONSUMED_EVENTS)[T]['data']>;

/**
 * The streams the service creates when none captures these subjects yet (in production the
 * partners own theirs; the service binds to whichever stream captures each subject).
 */
export const STREAMS = {
  ORDERS_EVENTS: 'orders.events.>',
  CATALOG_EVENTS: 'catalog.events.>',
  PAYMENTS_EVENTS: 'payments.events.>',
} as const;
/** The durable pull consumer the service binds on each stream it consumes from. */
export const CONSUMER_NAME = 'orders';

/**
 * CloudEvents 1.0, structured JSON mode, both directions. Inbound messages are parsed with this
 * schema (their `data` then with the type's own schema).
 */
export const CloudEvent = z.looseObject({
  specversion: z.literal('1.0'),
  id: z.string().min(1).max(200),
  source: z.string().min(1).max(500),
  type: z.string().min(1).max(200),
  subject: z.string().max(200).optional(),
  time: z.iso.datetime({ offset: true }).optional(),
  datacontenttype: z.literal('application/json').optional(),
  data: z.unknown(),
});
export type CloudEvent = z.infer<typeof CloudEvent>;
export const CLOUDEVENTS_CONTENT_TYPE = 'application/cloudevents+json';

/** The envelope of an event the service publishes (`subject` is the order id). */
export function toCloudEvent(event: {
  id: string;
  type: string;
  aggregateId: string;
  createdAt: Date | string;
  data: unknown;
}): CloudEvent {
  return {
    specversion: '1.0',
    id: event.id,
    source: EVENT_SOURCE,
    type: event.type,
    subject: event.aggregateId,
    time: typeof event.createdAt === 'string' ? event.createdAt : event.createdAt.toISOString(),
    datacontenttype: 'application/json',
    data: event.data,
  };
}

/** The JSON body of a message published to NATS before events were CloudEvents (kept for the old reader). */
export interface PublishedEvent {
  id: string;
  type: string;
  aggregateType: string;
  aggregateId: string;
  createdAt: string;
  data: unknown;
}

/** The JetStream stream the service creates when none captures its subjects. */
export const DEFAULT_STREAM = 'ORDERS_EVENTS';
/** Events are published on `<prefix>.<type>`, e.g. `orders.events.OrderCreated`. */
export const DEFAULT_SUBJECT_PREFIX = 'orders.events';

export function subjectFor(prefix: string, type: string): string {
  return `${prefix}.${type}`;
}

/** Published (the outbox) or consumed (the inbox). */
export const EVENT_DIRECTIONS = ['outbound', 'inbound'] as const;
export const EventDirection = z.enum(EVENT_DIRECTIONS);
export type EventDirection = z.infer<typeof EventDirection>;

/** The statuses of a consumed event: applied (or recorded as a no-op), or dead with its reason. */
export const INBOX_STATUSES = ['processed', 'dead'] as const;
export const InboxStatus = z.enum(INBOX_STATUSES);
export type InboxStatus = z.infer<typeof InboxStatus>;

/**
 * An event as `GET /orders/{id}/events` and `orders events list --json` show it: what the order
 * published (outbound: a UUID, the outbox's attempts) and what it consumed (inbound: the
 * producer's CloudEvents id, processed or dead, one attempt; `createdAt` is when it was received).
 */
export const OrderEvent = z
  .object({
    id: z
      .string()
      .min(1)
      .meta({ description: "A UUID (published) or the producer's CloudEvents id (consumed)" }),
    type: z.string().meta({ example: ORDER_CREATED }),
    direction: EventDirection,
    status: EventStatus,
    attempts: z.int().min(0),
    createdAt: z.iso.datetime(),
    processedAt: z.iso.datetime().nullable(),
  })
  .meta({ id: 'OrderEvent' });
export type OrderEvent = z.infer<typeof OrderEvent>;

export const OrderEvents = z.object({ events: z.array(OrderEvent) }).meta({ id: 'OrderEvents' });
