/**
 * One lifecycle transition of one order, inside the caller's transaction: lock the order (as the
 * caller may see it), check If-Match against its version, ask the state machine (lifecycle.ts),
 * and on a change write the new state (version + 1, updated_at) and one outbox event per
 * published event, whose payload is the order as after the change (the GET body, byte for byte
 * before jsonb). Both callers run it in a transaction of their own: the service for cancel and
 * ship (src/orders/service.ts), the inbox for consumed events (src/messaging/inbox.ts), which
 * inserts its inbox row in the same transaction so the effect and its dedupe record commit
 * together.
 *
 * Concurrent transitions of one order serialise on the row lock (SELECT … FOR UPDATE): the
 * second sees the first's result. If-Match is compared under that lock, never read-then-write,
 * and before the state machine is asked (RFC 9110 §13.2.2: a failed precondition is 412 even
 * where the request would otherwise be refused).
 */
import {
  ORDER_CANCELLED,
  ORDER_CONFIRMED,
  ORDER_SHIPPED,
  type PublishedEventType,
} from '../messaging/events.js';
import type { Queryable, QueryOptions } from '../platform/db.js';
import { uuidv7 } from '../platform/uuid.js';
import { decide, type LifecycleEvent, type LifecycleInput, type OrderStatus } from './lifecycle.js';
import { ORDER_COLUMNS, type OrderRow, toOrder, type Visibility } from './repository.js';
import type { Order } from './schemas.js';

/** The outbox type of each event the state machine asks to publish (the contract's names). */
const EVENT_TYPES: Readonly<Record<LifecycleEvent, PublishedEventType>> = {
  OrderConfirmed: ORDER_CONFIRMED,
  OrderCancelled: ORDER_CANCELLED,
  OrderShipped: ORDER_SHIPPED,
};

/**
 * An If-Match precondition: the versions its strong entity tags name (`"3"` → 3; none when it
 * named only tags no version has, which then never match), or `*` (any current order).
 */
export type IfMatch = { versions: readonly number[] } | '*';

export interface TransitionRequest {
  orderId: string;
  input: LifecycleInput;
  /** Whose order the caller may touch (null: any). Another customer's order is `not_found`. */
  visibleTo: Visibility;
  /** Checked under the row lock before anything else; absent: no precondition. */
  ifMatch?: IfMatch | undefined;
  /** W3C trace context the published events carry to the worker (as on the create path). */
  traceContext?: Record<string, string> | undefined;
  /**
   * A permanent refusal for this order, checked under the lock after If-Match and before the
   * state machine (e.g. a PaymentCaptured whose amount or currency is not the order's): a reason
   * makes the outcome `rejected` and nothing is written.
   */
  check?: ((order: Order) => string | undefined) | undefined;
}

/**
 * - `changed`: written (not yet committed: the caller commits, then wakes the worker for
 *   `eventIds` and counts `statusChange` when there is one). `order` is as after the change.
 * - `unchanged`: a duplicate, a late event, a repeated command: nothing written, version stays.
 * - `refused`: a command that does not apply (409 invalid_transition), with a detail.
 * - `precondition_failed`: If-Match names another version (412); `order` is the current one.
 * - `rejected`: `check` gave a reason; nothing written.
 * - `not_found`: no such order (or not visible to the caller).
 * `eventIds` is empty except on `changed` (and may be empty then too: a partner's fact that moves
 * no status publishes nothing).
 */
export type TransitionResult =
  | {
      outcome: 'changed';
      order: Order;
      eventIds: string[];
      /** The status move, when the change moved it (for orders_status_transitions_total). */
      statusChange: { from: OrderStatus; to: OrderStatus } | null;
    }
  | { outcome: 'unchanged'; order: Order; eventIds: [] }
  | { outcome: 'refused'; order: Order; detail: string; eventIds: [] }
  | { outcome: 'precondition_failed'; order: Order; eventIds: [] }
  | { outcome: 'rejected'; order: Order; reason: string; eventIds: [] }
  | { outcome: 'not_found'; eventIds: [] };

/**
 * What LOCK_ORDER_SQL selects from `orders o`: also for a caller that locks the row in a statement
 * of its own (the inbox locks it in the statement that records the message, a round trip less).
 */
export const LOCKED_ORDER_COLUMNS = `${ORDER_COLUMNS},
       GREATEST(date_trunc('milliseconds', clock_timestamp()), COALESCE(o.updated_at, o.created_at)) AS change_at`;

/**
 * The row, locked, and `change_at`, the change's updated_at (and its events' created_at), read
 * here so the event's payload and the row agree to the millisecond without another round trip.
 * It is the clock once the lock is held (a row changed while we waited is re-read, and this with
 * it), never before the order's last change or its creation (created_at is the API pod's clock).
 */
const LOCK_ORDER_SQL = `
SELECT ${LOCKED_ORDER_COLUMNS}
FROM orders o WHERE o.id = $1 AND ($2::text IS NULL OR o.customer_id = $2)
FOR UPDATE OF o`;

/** A row of LOCKED_ORDER_COLUMNS. */
export type LockedOrderRow = OrderRow & { change_at: Date };

/** The change and its events, in one statement; the version guard is belt and braces under the lock. */
const APPLY_SQL = `
WITH upd AS (
  UPDATE orders SET status = $2, stock = $3, payment = $4, cancellation_reason = $5,
         version = version + 1, updated_at = $6::timestamptz
  WHERE id = $1 AND version = $7
  RETURNING id
), evt AS (
  INSERT INTO outbox_events (id, aggregate_type, aggregate_id, type, payload, trace_context, created_at, available_at)
  SELECT e.id, 'order', upd.id, e.type, $8::text::jsonb, $9::jsonb, $6::timestamptz, now()
  FROM upd, unnest($10::uuid[], $11::text[]) AS e (id, type)
)
SELECT count(*)::int AS updated FROM upd`;

export async function transitionOrder(
  tx: Queryable,
  request: TransitionRequest,
  options: QueryOptions = {},
): Promise<TransitionResult> {
  const locked = await tx.query<LockedOrderRow>(
    { name: 'orders.lock', text: LOCK_ORDER_SQL },
    [request.orderId, request.visibleTo.customerId],
    options,
  );
  return transitionLockedOrder(tx, request, locked.rows[0], options);
}

/**
 * transitionOrder after its first step, for a caller that already locked the order in this
 * transaction (`SELECT LOCKED_ORDER_COLUMNS … FOR UPDATE OF o`, visible to the caller); `row`
 * undefined: no such order.
 */
export async function transitionLockedOrder(
  tx: Queryable,
  request: TransitionRequest,
  row: LockedOrderRow | undefined,
  options: QueryOptions = {},
): Promise<TransitionResult> {
  if (!row) return { outcome: 'not_found', eventIds: [] };
  const current = toOrder(row);
  const { ifMatch } = request;
  if (ifMatch !== undefined && ifMatch !== '*' && !ifMatch.versions.includes(current.version)) {
    return { outcome: 'precondition_failed', order: current, eventIds: [] };
  }
  const reason = request.check?.(current);
  if (reason !== undefined) return { outcome: 'rejected', order: current, reason, eventIds: [] };

  const decision = decide(current, request.input);
  if (decision.kind === 'unchanged') return { outcome: 'unchanged', order: current, eventIds: [] };
  if (decision.kind === 'refused') {
    return { outcome: 'refused', order: current, detail: decision.detail, eventIds: [] };
  }
  const { state } = decision;
  const now = row.change_at;
  const order: Order = {
    ...current,
    status: state.status,
    version: current.version + 1,
    updatedAt: now.toISOString(),
    stock: state.stock,
    payment: state.payment,
    cancellationReason: state.cancellationReason,
  };
  const eventIds = decision.events.map(() => uuidv7(now.getTime()));
  const applied = await tx.query<{ updated: number }>(
    { name: 'orders.transition', text: APPLY_SQL },
    [
      order.id,
      order.status,
      order.stock,
      order.payment,
      order.cancellationReason,
      order.updatedAt,
      current.version,
      JSON.stringify(order),
      request.traceContext ? JSON.stringify(request.traceContext) : null,
      eventIds,
      decision.events.map((event) => EVENT_TYPES[event]),
    ],
    options,
  );
  // Under FOR UPDATE nobody else can have moved the version: a miss is a bug, not a race.
  if (applied.rows[0]?.updated !== 1) throw new Error(`order ${order.id} changed under its row lock`);
  const statusChange = current.status === order.status ? null : { from: current.status, to: order.status };
  return { outcome: 'changed', order, eventIds, statusChange };
}
