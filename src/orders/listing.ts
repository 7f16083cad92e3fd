/**
 * GET /orders: newest first by (created_at, id), keyset pagination. A page is the rows strictly
 * after the cursor (the previous page's last row) in that order, read by an index range scan on
 * (customer_id, created_at DESC, id DESC) or (created_at DESC, id DESC): as cheap on page 10,000
 * as on page 1, and orders created meanwhile (newer than the first page's first row) never shift
 * an older page, so paging through never repeats or skips one.
 *
 * The cursor is opaque to callers: base64url of the last row's created_at, at the database's
 * full (microsecond) precision, and id. A JavaScript Date would round to the millisecond and
 * could skip rows that share that millisecond.
 */
import type { Queryable, QueryOptions } from '../platform/db.js';
import type { OrderStatus } from './lifecycle.js';
import { ORDER_COLUMNS, type OrderRow, toOrder } from './repository.js';
import type { Order } from './schemas.js';

export const LIST_LIMIT_DEFAULT = 20;
export const LIST_LIMIT_MAX = 100;

export interface ListPosition {
  /** RFC 3339 UTC with six fraction digits, as the database renders it. */
  createdAt: string;
  id: string;
}

export interface ListQuery {
  /** One customer's orders (null: every customer's). */
  customerId: string | null;
  status: OrderStatus | undefined;
  limit: number;
  /** The last row of the previous page; absent on the first. */
  after: ListPosition | undefined;
}

export interface OrderPage {
  orders: Order[];
  /** Where the next page starts; null on the last page. */
  next: ListPosition | null;
}

const CURSOR_AT = `to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at`;

/**
 * One statement per combination of filters rather than `($1 IS NULL OR …)`: a prepared
 * statement's generic plan could not use an index condition that may be switched off.
 */
function listSql(query: ListQuery): { name: string; text: string; values: unknown[] } {
  const values: unknown[] = [];
  const where: string[] = [];
  const bind = (value: unknown) => {
    values.push(value);
    return `$${values.length}`;
  };
  if (query.customerId !== null) where.push(`o.customer_id = ${bind(query.customerId)}`);
  if (query.status !== undefined) where.push(`o.status = ${bind(query.status)}`);
  if (query.after) {
    const at = bind(query.after.createdAt);
    where.push(`(o.created_at, o.id) < (${at}::timestamptz, ${bind(query.after.id)}::uuid)`);
  }
  const limit = bind(query.limit + 1);
  const name = `orders.list.${query.customerId !== null ? 'c' : ''}${query.status ? 's' : ''}${query.after ? 'k' : ''}`;
  const text = `
SELECT ${ORDER_COLUMNS}, ${CURSOR_AT}
FROM orders o${where.length ? `\nWHERE ${where.join(' AND ')}` : ''}
ORDER BY o.created_at DESC, o.id DESC
LIMIT ${limit}`;
  return { name, text, values };
}

export async function listOrders(
  db: Queryable,
  query: ListQuery,
  options: QueryOptions = {},
): Promise<OrderPage> {
  const { name, text, values } = listSql(query);
  const result = await db.query<OrderRow & { cursor_at: string }>({ name, text }, values, options);
  const rows = result.rows;
  const more = rows.length > query.limit;
  const page = more ? rows.slice(0, query.limit) : rows;
  const last = page.at(-1);
  return {
    orders: page.map(toOrder),
    next: more && last ? { createdAt: last.cursor_at, id: last.id } : null,
  };
}

const CURSOR_TEXT =
  /^(\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{6}Z)\|([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;
const BASE64URL = /^[A-Za-z0-9_-]{1,200}$/;

export function encodeCursor(position: ListPosition): string {
  return Buffer.from(`${position.createdAt}|${position.id}`, 'utf8').toString('base64url');
}

/** The position a cursor names, or undefined when it is not one this service made. */
export function decodeCursor(cursor: string): ListPosition | undefined {
  if (!BASE64URL.test(cursor)) return undefined;
  const bytes = Buffer.from(cursor, 'base64url');
  // Node decodes leniently; only the canonical spelling of a cursor is one.
  if (bytes.toString('base64url') !== cursor) return undefined;
  const match = CURSOR_TEXT.exec(bytes.toString('utf8'));
  if (!match) return undefined;
  const [, createdAt, id] = match as unknown as [string, string, string];
  // The shape admits 31 February; a date that does not exist is no cursor (nor a 500).
  const ms = createdAt.slice(0, 23);
  if (Number.isNaN(Date.parse(`${ms}Z`)) || new Date(`${ms}Z`).toISOString().slice(0, 23) !== ms) {
    return undefined;
  }
  return { createdAt, id };
}
