/**
 * The orders tables: every SQL statement of the orders domain and the mapping of its rows. Each
 * function takes the Queryable to run on, so a caller may pass the pool or a transaction.
 *
 * Creating an order is ONE statement: the idempotency record, the order, its items and the
 * OrderCreated outbox event are inserted by data-modifying CTEs, so they commit or vanish
 * together in a single round trip. A concurrent request with the same key blocks on the key's
 * unique index entry until the first commits, then replays its stored response. The times the
 * database compares (the event's available_at, the key's expires_at) come from its clock, never
 * the process's: an API pod whose clock runs ahead would otherwise delay every event.
 *
 * With a `claim`, the event is written already claimed by the in-process worker (status
 * `processing`, its lease, attempt 1), exactly as its claim statement would have left it: the
 * worker takes it from the API after the commit instead of claiming it, which saves the claim's
 * round trip and its row update. Should the worker never get it (the process died after the
 * commit), the lease lapses and any worker claims it like a crashed worker's event.
 */
import { ORDER_CREATED, type OrderEvent } from '../messaging/events.js';
import type { Queryable, QueryOptions } from '../platform/db.js';
import { LOCK_NOT_AVAILABLE } from '../platform/errors.js';
import type { StoredResponse } from './idempotency.js';
import type { Order } from './schemas.js';

const CREATE_ORDER_SQL = `
WITH key AS (
  INSERT INTO idempotency_keys AS k
    (scope, key, fingerprint, status_code, response_headers, response_body, created_at, expires_at)
  SELECT $1::text, $2::text, $3::text, 201, $4::jsonb, $5::text, $6::timestamptz,
         now() + make_interval(secs => $7::double precision)
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
  INSERT INTO outbox_events (id, aggregate_type, aggregate_id, type, payload, trace_context, created_at, available_at,
                             status, attempts, locked_by, locked_until)
  SELECT $15::uuid, 'order', ord.id, '${ORDER_CREATED}', $5::text::jsonb, $16::jsonb, $6::timestamptz, now(),
         CASE WHEN $17::text IS NULL THEN 'pending' ELSE 'processing' END,
         CASE WHEN $17::text IS NULL THEN 0 ELSE 1 END,
         $17::text,
         CASE WHEN $17::text IS NULL THEN NULL ELSE now() + make_interval(secs => $18::double precision) END
  FROM ord
)
SELECT EXISTS (SELECT 1 FROM ord) AS created`;

const FIND_KEY_SQL = `
SELECT fingerprint, status_code, response_headers, response_body
FROM idempotency_keys WHERE scope = $1 AND key = $2 AND expires_at > now()`;

/**
 * The columns every read of an order selects (alias `o`), mapped by toOrder. `updated_at` is
 * NULL until the first change (rows written before the lifecycle columns existed, and new ones).
 */
export const ORDER_COLUMNS = `o.id, o.customer_id, o.status, o.currency, o.total, o.created_at,
       o.version, COALESCE(o.updated_at, o.created_at) AS updated_at, o.stock, o.payment,
       o.cancellation_reason,
       (SELECT json_agg(json_build_array(i.sku, i.quantity, i.unit_price) ORDER BY i.line_no)
        FROM order_items i WHERE i.order_id = o.id) AS items`;

/** One order by id, for one customer ($2) or any (NULL). Exported for the bench's bare baseline. */
export const GET_ORDER_SQL = `
SELECT ${ORDER_COLUMNS}
FROM orders o WHERE o.id = $1 AND ($2::text IS NULL OR o.customer_id = $2)`;

/**
 * One order's 200 body, built by PostgreSQL as the exact bytes `JSON.stringify(toOrder(row))`
 * gives for GET_ORDER_SQL's row (held to that by test/integration/order-body.test.ts), with its
 * version for the ETag. The read then costs Node neither twelve parsed columns nor a JSON
 * round trip: it sends the text it received. Free text (customer id, SKU) and the nullable
 * cancellation reason go through to_json, which escapes as JSON.stringify does; every other
 * column is a uuid, a number or a word its domain's check fixes. Times: milliseconds, UTC,
 * truncated, as a Date truncates them.
 */
export const GET_ORDER_BODY_SQL = `
SELECT o.version,
  '{"id":"' || o.id || '","customerId":' || to_json(o.customer_id)::text
  || ',"status":"' || o.status || '","currency":"' || o.currency || '","items":['
  || COALESCE((SELECT string_agg('{"sku":' || to_json(i.sku)::text || ',"quantity":' || i.quantity
                                 || ',"unitPrice":' || i.unit_price || '}', ',' ORDER BY i.line_no)
               FROM order_items i WHERE i.order_id = o.id), '')
  || '],"total":' || o.total
  || ',"createdAt":"' || to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
  || '","version":' || o.version
  || ',"updatedAt":"' || to_char(COALESCE(o.updated_at, o.created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
  || '","stock":"' || o.stock || '","payment":"' || o.payment
  || '","cancellationReason":' || COALESCE(to_json(o.cancellation_reason)::text, 'null') || '}' AS body
FROM orders o WHERE o.id = $1 AND ($2::text IS NULL OR o.customer_id = $2)`;

/** An order as the API sends it: the JSON body, and the version its ETag names. */
export interface OrderRepresentation {
  version: number;
  body: string;
}

/**
 * What the order published (the outbox) and what it consumed (the inbox, by its order_id index),
 * in time order, a consumed event before what it caused (both carry the transaction's time, to
 * the millisecond; 'inbound' sorts first). Only the order's rows are read, by index.
 */
const LIST_EVENTS_SQL = `
WITH visible AS (
  SELECT id FROM orders WHERE id = $1 AND ($2::text IS NULL OR customer_id = $2)
), events AS (
  SELECT e.id::text AS id, e.type, 'outbound' AS direction, e.status, e.attempts,
         e.created_at, e.processed_at
  FROM outbox_events e JOIN visible v ON e.aggregate_id = v.id
  UNION ALL
  SELECT m.id, m.type, 'inbound', m.status, 1, date_trunc('milliseconds', m.received_at), m.processed_at
  FROM inbox_messages m JOIN visible v ON m.order_id = v.id
)
SELECT EXISTS (SELECT 1 FROM visible) AS order_exists,
       COALESCE((SELECT json_agg(json_build_object(
           'id', e.id, 'type', e.type, 'direction', e.direction, 'status', e.status,
           'attempts', e.attempts, 'createdAt', e.created_at, 'processedAt', e.processed_at)
           ORDER BY e.created_at, e.direction, e.id)
         FROM events e), '[]'::json) AS events`;

/** Whose orders an operation may see: one customer's, or (null) everyone's. */
export interface Visibility {
  customerId: string | null;
}

export interface IdempotencyKeyRef {
  /** Whose key it is; keys of different scopes never meet. */
  scope: string;
  key: string;
}

/** Everything the order write stores, in one statement. */
export interface OrderWrite {
  order: Order;
  /** The 201 response: stored with the idempotency key, and its body is the event's payload. */
  response: StoredResponse;
  eventId: string;
  /** Without one, no idempotency record is written. */
  idempotency: (IdempotencyKeyRef & { fingerprint: string }) | undefined;
  /** How long the idempotency record is replayed. */
  idempotencyTtlSeconds: number;
  /** W3C trace context the OrderCreated event carries to the worker. */
  traceContext: Record<string, string> | undefined;
  /** Write the event claimed by this worker, with this lease; without one it is pending. */
  claim?: { workerId: string; leaseMs: number } | undefined;
}

/**
 * - `created`: everything was written and committed.
 * - `key_taken`: an unexpired record holds the key (only with a key); nothing was written.
 * - `key_locked`: the key's first request is still running and held it past lock_timeout.
 */
export type OrderWriteOutcome = 'created' | 'key_taken' | 'key_locked';

export async function insertOrder(
  db: Queryable,
  write: OrderWrite,
  options: QueryOptions = {},
): Promise<OrderWriteOutcome> {
  const { order, response, idempotency } = write;
  const values = [
    idempotency?.scope ?? '',
    idempotency?.key ?? null,
    idempotency?.fingerprint ?? null,
    JSON.stringify(response.headers),
    response.body,
    order.createdAt,
    write.idempotencyTtlSeconds,
    order.id,
    order.customerId,
    order.currency,
    order.total,
    order.items.map((i) => i.sku),
    order.items.map((i) => i.quantity),
    order.items.map((i) => i.unitPrice),
    write.eventId,
    write.traceContext ? JSON.stringify(write.traceContext) : null,
    write.claim?.workerId ?? null,
    write.claim ? write.claim.leaseMs / 1000 : null,
  ];
  try {
    const result = await db.query<{ created: boolean }>(
      { name: 'orders.create', text: CREATE_ORDER_SQL },
      values,
      options,
    );
    return result.rows[0]?.created === true ? 'created' : 'key_taken';
  } catch (error) {
    if (idempotency && (error as { code?: string }).code === LOCK_NOT_AVAILABLE) return 'key_locked';
    throw error;
  }
}

/** The unexpired idempotency record of a key, if any. */
export async function findIdempotencyRecord(
  db: Queryable,
  ref: IdempotencyKeyRef,
  options: QueryOptions = {},
): Promise<{ fingerprint: string; response: StoredResponse } | undefined> {
  const result = await db.query<{
    fingerprint: string;
    status_code: number;
    response_headers: Record<string, string>;
    response_body: string;
  }>({ name: 'orders.find_key', text: FIND_KEY_SQL }, [ref.scope, ref.key], options);
  const row = result.rows[0];
  if (!row) return undefined;
  return {
    fingerprint: row.fingerprint,
    response: { statusCode: row.status_code, headers: row.response_headers, body: row.response_body },
  };
}

/**
 * The order, if it exists and `customerId` is null (any customer's) or its customer: another
 * customer's order is as absent as an unknown one.
 */
export function findOrder(
  db: Queryable,
  id: string,
  customerId: string | null,
  options: QueryOptions = {},
): Promise<Order | undefined> {
  return db.query<OrderRow>(GET_ORDER, [id, customerId], options).then(firstOrder);
}

const GET_ORDER = { name: 'orders.get', text: GET_ORDER_SQL };

/** findOrder's visibility, the order as its 200 body (GET_ORDER_BODY_SQL). */
export function findOrderRepresentation(
  db: Queryable,
  id: string,
  customerId: string | null,
  options: QueryOptions = {},
): Promise<OrderRepresentation | undefined> {
  return db.query<OrderRepresentation>(GET_ORDER_BODY, [id, customerId], options).then(firstRow);
}

const GET_ORDER_BODY = { name: 'orders.get_body', text: GET_ORDER_BODY_SQL };

function firstRow<R>(result: { rows: R[] }): R | undefined {
  return result.rows[0];
}

function firstOrder(result: { rows: OrderRow[] }): Order | undefined {
  const row = result.rows[0];
  return row ? toOrder(row) : undefined;
}

/** A row of ORDER_COLUMNS. */
export interface OrderRow {
  id: string;
  customer_id: string;
  status: Order['status'];
  currency: string;
  total: number;
  created_at: Date;
  version: number;
  updated_at: Date;
  stock: Order['stock'];
  payment: Order['payment'];
  cancellation_reason: Order['cancellationReason'];
  items: [string, number, number][] | null;
}

/** The order's wire shape from its row; the key order is the body's. */
export function toOrder(row: OrderRow): Order {
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
    version: row.version,
    updatedAt: row.updated_at.toISOString(),
    stock: row.stock,
    payment: row.payment,
    cancellationReason: row.cancellation_reason,
  };
}

/** An order's outbox events, oldest first; undefined when there is no such order (for `customerId`). */
export async function findOrderEvents(
  db: Queryable,
  orderId: string,
  customerId: string | null,
  options: QueryOptions = {},
): Promise<OrderEvent[] | undefined> {
  const result = await db.query<{
    order_exists: boolean;
    events: (Omit<OrderEvent, 'createdAt' | 'processedAt'> & {
      createdAt: string;
      processedAt: string | null;
    })[];
  }>({ name: 'orders.list_events', text: LIST_EVENTS_SQL }, [orderId, customerId], options);
  const row = result.rows[0];
  if (!row?.order_exists) return undefined;
  return row.events.map((e) => ({
    ...e,
    createdAt: toIso(e.createdAt),
    processedAt: e.processedAt === null ? null : toIso(e.processedAt),
  }));
}

/** PostgreSQL renders timestamptz in JSON with the session's offset; normalise to RFC 3339 UTC. */
function toIso(value: string): string {
  return new Date(value).toISOString();
}
