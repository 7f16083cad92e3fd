/**
 * Orders: the domain rules behind the API. Building an order and its 201 response, the
 * idempotency decisions (create, replay, refuse a reused key, ask to retry a key in use), the
 * commands (cancel, ship: one transaction each, transitions.ts), the listing (listing.ts) and the
 * AppErrors the API turns into problems. The SQL lives in repository.ts, transitions.ts and listing.ts.
 */
import { ORDER_CREATED, type OrderEvent } from '../messaging/events.js';
import type { OutboxEvent, PreClaim } from '../messaging/outbox.js';
import type { QueryOptions, Transactional } from '../platform/db.js';
import { AppError } from '../platform/errors.js';
import { uuidv7 } from '../platform/uuid.js';
import type { StoredResponse } from './idempotency.js';
import type { OrderStatus } from './lifecycle.js';
import { type ListQuery, listOrders, type OrderPage } from './listing.js';
import {
  findIdempotencyRecord,
  findOrder,
  findOrderEvents,
  findOrderRepresentation,
  insertOrder,
  type OrderRepresentation,
  type OrderWrite,
  type OrderWriteOutcome,
  type Visibility,
} from './repository.js';
import { type Order, type OrderInput, orderTotal } from './schemas.js';
import { type IfMatch, transitionOrder } from './transitions.js';

export type CreateOrderResult =
  | { kind: 'created'; order: Order; eventId: string; response: StoredResponse }
  | { kind: 'replayed'; response: StoredResponse };

export interface CreateOrderCommand {
  input: OrderInput;
  /** Whose order it is: the body's customerId, or the caller's own (authorization decided it). */
  customerId: string;
  idempotency?: { key: string; fingerprint: string; scope?: string } | undefined;
  traceContext?: Record<string, string> | undefined;
}

export type { Visibility } from './repository.js';

/** A caller's command on an order (cancel, ship). */
export interface OrderCommand {
  kind: 'cancel' | 'ship';
  orderId: string;
  visibleTo: Visibility;
  ifMatch?: IfMatch | undefined;
  traceContext?: Record<string, string> | undefined;
}

export interface OrderCommandResult {
  /** The order as it is after the command (changed or not). */
  order: Order;
  /** The status move the command made, if any (counted after commit). */
  statusChange: { from: OrderStatus; to: OrderStatus } | null;
}

/** The strong entity tag of an order's version: `"<version>"`. */
export function orderETag(order: Pick<Order, 'version'>): string {
  return `"${order.version}"`;
}

export interface OrdersServiceOptions {
  db: Transactional;
  idempotencyTtlHours: number;
  /** Called after an order's transaction committed (wakes the in-process worker). */
  onEventCommitted?: (eventId: string) => void;
  /**
   * The in-process worker's claim on a new order's OrderCreated event, taken before the write
   * (undefined: the worker has no room; the event is written pending and woken).
   */
  preClaim?: () => PreClaim | undefined;
}

export function createOrdersService(options: OrdersServiceOptions) {
  const { db } = options;
  const ttlSeconds = options.idempotencyTtlHours * 3600;

  async function create(
    command: CreateOrderCommand,
    queryOptions: QueryOptions = {},
  ): Promise<CreateOrderResult> {
    const { input } = command;
    const now = new Date();
    const order: Order = {
      id: uuidv7(now.getTime()),
      customerId: command.customerId,
      status: 'pending',
      currency: input.currency,
      items: input.items.map((i) => ({ sku: i.sku, quantity: i.quantity, unitPrice: i.unitPrice })),
      total: orderTotal(input.items),
      createdAt: now.toISOString(),
      version: 1,
      updatedAt: now.toISOString(),
      stock: 'pending',
      payment: 'pending',
      cancellationReason: null,
    };
    // Stored with the key: a replay carries the ETag too.
    const response: StoredResponse = {
      statusCode: 201,
      headers: {
        'content-type': 'application/json; charset=utf-8',
        location: `/orders/${order.id}`,
        etag: orderETag(order),
      },
      body: JSON.stringify(order),
    };
    const eventId = uuidv7(now.getTime());
    const idempotency = command.idempotency && {
      scope: command.idempotency.scope ?? '',
      key: command.idempotency.key,
      fingerprint: command.idempotency.fingerprint,
    };
    const write: OrderWrite = {
      order,
      response,
      eventId,
      idempotency,
      idempotencyTtlSeconds: ttlSeconds,
      traceContext: command.traceContext,
      claim: undefined, // set per attempt, below
    };

    // Two rounds at most: a key that vanishes between our insert and our read (it expired, or
    // its transaction rolled back after we waited) simply gets a second attempt.
    for (let attempt = 0; attempt < 2; attempt++) {
      const claim = options.preClaim?.();
      write.claim = claim;
      let outcome: OrderWriteOutcome;
      try {
        outcome = await insertOrder(db, write, queryOptions);
      } catch (error) {
        claim?.cancel();
        throw error;
      }
      if (outcome === 'created') {
        if (claim) claim.adopt(orderCreatedEvent(write, now));
        else options.onEventCommitted?.(eventId);
        return { kind: 'created', order, eventId, response };
      }
      claim?.cancel();
      if (outcome === 'key_locked') throw keyInUse();
      if (!idempotency) throw new Error('order insert returned no row without an idempotency key');
      const stored = await findIdempotencyRecord(db, idempotency, queryOptions);
      if (!stored) continue;
      if (stored.fingerprint !== idempotency.fingerprint) {
        throw new AppError(
          'idempotency_key_reused',
          'This Idempotency-Key was already used with a different request. Use a new key for a new request.',
        );
      }
      return { kind: 'replayed', response: stored.response };
    }
    throw keyInUse();
  }

  /** `visibleTo.customerId`: only that customer's order (null: any customer's). */
  function get(id: string, visibleTo: Visibility, queryOptions: QueryOptions = {}): Promise<Order> {
    // A then rather than an async function: the read path's one promise fewer.
    return findOrder(db, id, visibleTo.customerId, queryOptions).then((order) => {
      if (!order) throw orderNotFound(id);
      return order;
    });
  }

  /** get() as the API sends it: the body PostgreSQL built, and the version for the ETag. */
  function getRepresentation(
    id: string,
    visibleTo: Visibility,
    queryOptions: QueryOptions = {},
  ): Promise<OrderRepresentation> {
    return findOrderRepresentation(db, id, visibleTo.customerId, queryOptions).then((order) => {
      if (!order) throw orderNotFound(id);
      return order;
    });
  }

  async function listEvents(
    orderId: string,
    visibleTo: Visibility,
    queryOptions: QueryOptions = {},
  ): Promise<OrderEvent[]> {
    const events = await findOrderEvents(db, orderId, visibleTo.customerId, queryOptions);
    if (!events) throw orderNotFound(orderId);
    return events;
  }

  /**
   * Cancel or ship, in one transaction: lock, If-Match, the state machine, the change and its
   * events. The worker is woken for each event once the transaction committed.
   */
  async function command(cmd: OrderCommand, queryOptions: QueryOptions = {}): Promise<OrderCommandResult> {
    const result = await db.transaction(
      (tx) =>
        transitionOrder(
          tx,
          {
            orderId: cmd.orderId,
            input: { kind: cmd.kind },
            visibleTo: cmd.visibleTo,
            ifMatch: cmd.ifMatch,
            traceContext: cmd.traceContext,
          },
          queryOptions,
        ),
      queryOptions,
    );
    switch (result.outcome) {
      case 'changed':
        for (const id of result.eventIds) options.onEventCommitted?.(id);
        return { order: result.order, statusChange: result.statusChange };
      case 'unchanged':
        return { order: result.order, statusChange: null };
      case 'refused':
        throw new AppError('invalid_transition', result.detail);
      case 'precondition_failed':
        throw new AppError(
          'precondition_failed',
          `If-Match does not name the order's current version (${orderETag(result.order)}). Read it again.`,
        );
      case 'rejected':
        throw new Error(`a command was rejected by a check it does not have: ${result.reason}`);
      case 'not_found':
        throw orderNotFound(cmd.orderId);
    }
  }

  /** A page of orders, newest first (the caller decided `query.customerId` from visibility). */
  function list(query: ListQuery, queryOptions: QueryOptions = {}): Promise<OrderPage> {
    return listOrders(db, query, queryOptions);
  }

  return { create, get, getRepresentation, listEvents, command, list };
}

export type OrdersService = ReturnType<typeof createOrdersService>;

function keyInUse(): AppError {
  return new AppError(
    'idempotency_key_in_use',
    'A request with this Idempotency-Key is still being processed. Retry after the indicated delay.',
    { retryAfterSeconds: 1 },
  );
}

function orderNotFound(id: string): AppError {
  return new AppError('not_found', `No order with id ${id}.`);
}

/** The OrderCreated event as the order write stored it (pre-claimed: attempt 1). */
function orderCreatedEvent(write: OrderWrite, createdAt: Date): OutboxEvent {
  return {
    id: write.eventId,
    type: ORDER_CREATED,
    aggregateType: 'order',
    aggregateId: write.order.id,
    payload: write.order,
    traceContext: write.traceContext ?? null,
    attempts: 1,
    createdAt,
  };
}
