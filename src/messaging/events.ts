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

/** The events the service publishes, each with the schema of its payload (`data`). */
export const PUBLISHED_EVENTS = {
  /** The order as the API answered it (the 201 body): one serialisation for both. */
  [ORDER_CREATED]: Order,
} as const;
export type PublishedEventType = keyof typeof PUBLISHED_EVENTS;
export type OrderCreatedPayload = z.infer<(typeof PUBLISHED_EVENTS)[typeof ORDER_CREATED]>;

/** The JSON body of a message published to NATS. */
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

/** An event as `GET /orders/{id}/events` and `orders events list --json` show it. */
export const OrderEvent = z
  .object({
    id: z.uuid(),
    type: z.string().meta({ example: ORDER_CREATED }),
    status: EventStatus,
    attempts: z.int().min(0),
    createdAt: z.iso.datetime(),
    processedAt: z.iso.datetime().nullable(),
  })
  .meta({ id: 'OrderEvent' });
export type OrderEvent = z.infer<typeof OrderEvent>;

export const OrderEvents = z.object({ events: z.array(OrderEvent) }).meta({ id: 'OrderEvents' });
