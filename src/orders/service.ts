/**
 * Orders: the repository (SQL) and the service (domain rules, idempotency) behind the API.
 *
 * Creating an order is ONE statement: the idempotency record, the order, its items and the
 * OrderCreated outbox event are inserted by data-modifying CTEs, so they commit or vanish
 * together in a single round trip. A concurrent request with the same key blocks on the key's
 * unique index entry until the first commits, then replays its stored response.
 */

import { ORDER_CREATED, type OrderEvent } from '../messaging/events.js';
import type { Queryable, QueryOptions } from '../platform/db.js';
import { AppError } from '../platform/errors.js';
import { uuidv7 } from '../platform/uuid.js';
import { type Order, type OrderInput, orderTotal } from './schemas.js';

export interface StoredResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

export type CreateOrderResult =
  | { kind: 'created'; order: Order; eventId: string; response: StoredResponse }
  | { kind: 'replayed'; response: StoredResponse };

export interface CreateOrderCommand {
  input: OrderInput;
  idempotency?: { key: string; fingerprint: string; scope?: string } | undefined;
  traceContext?: Record<string, string> | undefined;
}

const CREATE_ORDER_SQL = `
WITH key AS (
  INSERT INTO idempotency_keys AS k
    (scope, key, fingerprint, status_code, response_headers, response_body, created_at, expires_at)
  SELECT $1::text, $2::text, $3::text, 201, $4::jsonb, $5::text, $6::timestamptz,
         $6::timestamptz + make_interval(secs => $7::double precision)
  WHERE $2::text IS NOT NULL
  ON CONFLICT (scope, key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, status_code = EXCLUDED.status_code,
        response_headers = EXCLUDED.response_headers, response_body = EXCLUDED.response_body,
        created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
    WHERE k.expires_at <= now()
  RETURNING 1
), ord AS (
  INSERT INTO orders (id, customer_id, currency, total, created_at)
  SELECT $8::uuid, $9::text, $10::text, $11::bigint, $6::timestamptz
  WHERE $2::text IS NULL OR EXISTS (SELECT 1 FROM key)
  RETURNING id
), items AS (
  INSERT INTO order_items (order_id, line_no, sku, quantity, unit_price)
  SELECT ord.id, (i.n - 1)::smallint, i.sku, i.quantity, i.unit_price
  FROM ord, unnest($12::text[], $13::int[], $14::bigint[]) WITH ORDINALITY AS i (sku, quantity, unit_price, n)
), evt AS (
  INSERT INTO outbox_events (id, aggregate_type, aggregate_id, type, payload, trace_context, created_at, available_at)
  SELECT $15::uuid, 'order', ord.id, '${ORDER_CREATED}', $5::text::jsonb, $16::jsonb, $6::timestamptz, $6::timestamptz
  FROM ord
)
SELECT EXISTS (SELECT 1 FROM ord) AS created`;

const FIND_KEY_SQL = `
SELECT fingerprint, status_code, response_headers, response_body
FROM idempotency_keys WHERE scope = $1 AND key = $2 AND expires_at > now()`;

const GET_ORDER_SQL = `
SELECT o.id, o.customer_id, o.status, o.currency, o.total, o.created_at,
       (SELECT json_agg(json_build_array(i.sku, i.quantity, i.unit_price) ORDER BY i.line_no)
        FROM order_items i WHERE i.order_id = o.id) AS items
FROM orders o WHERE o.id = $1`;

const LIST_EVENTS_SQL = `
SELECT EXISTS (SELECT 1 FROM orders WHERE id = $1) AS order_exists,
       COALESCE((SELECT json_agg(json_build_object(
           'id', e.id, 'type', e.type, 'status', e.status, 'attempts', e.attempts,
           'createdAt', e.created_at, 'processedAt', e.processed_at) ORDER BY e.created_at, e.id)
         FROM outbox_events e WHERE e.aggregate_id = $1), '[]'::json) AS events`;

export interface OrdersServiceOptions {
  db: Queryable;
  idempotencyTtlHours: number;
  /** Called after an order's transaction committed (wakes the in-process worker). */
  onEventCommitted?: (eventId: string) => void;
}

export function createOrdersService(options: OrdersServiceOptions) {
  const { db } = options;
  const ttlSeconds = options.idempotencyTtlHours * 3600;

  async function create(
    command: CreateOrderCommand,
    queryOptions: QueryOptions = {},
  ): Promise<CreateOrderResult> {
    const { input, idempotency } = command;
    const now = new Date();
    const order: Order = {
      id: uuidv7(now.getTime()),
      customerId: input.customerId,
      status: 'pending',
      currency: input.currency,
      items: input.items.map((i) => ({ sku: i.sku, quantity: i.quantity, unitPrice: i.unitPrice })),
      total: orderTotal(input.items),
      createdAt: now.toISOString(),
    };
    const response: StoredResponse = {
      statusCode: 201,
      headers: { 'content-type': 'application/json; charset=utf-8', location: `/orders/${order.id}` },
      body: JSON.stringify(order),
    };
    const eventId = uuidv7(now.getTime());
    const scope = idempotency?.scope ?? '';
    const values = [
      scope,
      idempotency?.key ?? null,
      idempotency?.fingerprint ?? null,
      JSON.stringify(response.headers),
      response.body,
      order.createdAt,
      ttlSeconds,
      order.id,
      order.customerId,
      order.currency,
      order.total,
      order.items.map((i) => i.sku),
      order.items.map((i) => i.quantity),
      order.items.map((i) => i.unitPrice),
      eventId,
      command.traceContext ? JSON.stringify(command.traceContext) : null,
    ];

    // Two rounds at most: a key that vanishes between our insert and our read (it expired, or
    // its transaction rolled back after we waited) simply gets a second attempt.
    for (let attempt = 0; attempt < 2; attempt++) {
      let created: boolean;
      try {
        const result = await db.query<{ created: boolean }>(
          { name: 'orders.create', text: CREATE_ORDER_SQL },
          values,
          queryOptions,
        );
        created = result.rows[0]?.created === true;
      } catch (error) {
        if (idempotency && (error as { code?: string }).code === '55P03') throw keyInUse();
        throw error;
      }
      if (created) {
        options.onEventCommitted?.(eventId);
        return { kind: 'created', order, eventId, response };
      }
      if (!idempotency) throw new Error('order insert returned no row without an idempotency key');
      const stored = await db.query<{
        fingerprint: string;
        status_code: number;
        response_headers: Record<string, string>;
        response_body: string;
      }>({ name: 'orders.find_key', text: FIND_KEY_SQL }, [scope, idempotency.key], queryOptions);
      const row = stored.rows[0];
      if (!row) continue;
      if (row.fingerprint !== idempotency.fingerprint) {
        throw new AppError(
          'idempotency_key_reused',
          'This Idempotency-Key was already used with a different request. Use a new key for a new request.',
        );
      }
      return {
        kind: 'replayed',
        response: { statusCode: row.status_code, headers: row.response_headers, body: row.response_body },
      };
    }
    throw keyInUse();
  }

  async function get(id: string, queryOptions: QueryOptions = {}): Promise<Order> {
    const result = await db.query<{
      id: string;
      customer_id: string;
      status: Order['status'];
      currency: string;
      total: number;
      created_at: Date;
      items: [string, number, number][] | null;
    }>({ name: 'orders.get', text: GET_ORDER_SQL }, [id], queryOptions);
    const row = result.rows[0];
    if (!row) throw orderNotFound(id);
    return {
      id: row.id,
      customerId: row.customer_id,
      status: row.status,
      currency: row.currency,
      items: (row.items ?? []).map(([sku, quantity, unitPrice]) => ({
        sku,
        quantity,
        unitPrice: Number(unitPrice),
      })),
      total: row.total,
      createdAt: row.created_at.toISOString(),
    };
  }

  async function listEvents(orderId: string, queryOptions: QueryOptions = {}): Promise<OrderEvent[]> {
    const result = await db.query<{
      order_exists: boolean;
      events: (Omit<OrderEvent, 'createdAt' | 'processedAt'> & {
        createdAt: string;
        processedAt: string | null;
      })[];
    }>({ name: 'orders.list_events', text: LIST_EVENTS_SQL }, [orderId], queryOptions);
    const row = result.rows[0];
    if (!row?.order_exists) throw orderNotFound(orderId);
    return row.events.map((e) => ({
      ...e,
      createdAt: toIso(e.createdAt),
      processedAt: e.processedAt === null ? null : toIso(e.processedAt),
    }));
  }

  return { create, get, listEvents };
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

/** PostgreSQL renders timestamptz in JSON with the session's offset; normalise to RFC 3339 UTC. */
function toIso(value: string): string {
  return new Date(value).toISOString();
}
