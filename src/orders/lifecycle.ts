/**
 * The order lifecycle as a pure function: given an order's state and an input (an event Catalog
 * or Payments published, or a customer's or fulfilment's command), the next state and the events
 * to publish, or a typed refusal. No SQL, no HTTP, no clock: the caller persists the result in one
 * transaction and stamps the time.
 *
 *   pending ──(stock reserved and payment captured)──▶ confirmed ──ship──▶ shipped
 *      │                                                   │
 *      └──cancel, stock rejected, payment failed──▶ cancelled ◀──cancel──┘
 *
 * As in eShop's Order aggregate, events that do not apply are no-ops (a late or duplicate event
 * changes nothing and is simply recorded as consumed), while commands that do not apply are
 * refused (409 invalid_transition). Partners compensate on their own side when they see
 * OrderCancelled (Payments refunds, Catalog releases stock), so an event about a cancelled order
 * records its fact (stock, payment) but never moves the status; an event about a shipped order
 * changes nothing at all.
 */

export const ORDER_STATUSES = ['pending', 'confirmed', 'cancelled', 'shipped'] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];
export const STOCK_STATES = ['pending', 'reserved', 'rejected'] as const;
export type StockState = (typeof STOCK_STATES)[number];
export const PAYMENT_STATES = ['pending', 'captured', 'failed'] as const;
export type PaymentState = (typeof PAYMENT_STATES)[number];
export const CANCELLATION_REASONS = ['requested', 'stock_rejected', 'payment_failed'] as const;
export type CancellationReason = (typeof CANCELLATION_REASONS)[number];

/** What the lifecycle reads and writes of an order. */
export interface LifecycleState {
  status: OrderStatus;
  stock: StockState;
  payment: PaymentState;
  cancellationReason: CancellationReason | null;
}

/** Facts from partners (consumed events) and commands from callers. */
export type LifecycleInput =
  | { kind: 'StockReserved' }
  | { kind: 'StockRejected' }
  | { kind: 'PaymentCaptured' }
  | { kind: 'PaymentFailed' }
  | { kind: 'cancel' }
  | { kind: 'ship' };

export type LifecycleEvent = 'OrderConfirmed' | 'OrderCancelled' | 'OrderShipped';

export type Transition =
  /** The order changes: one new version, and these events go to the outbox with it. */
  | { kind: 'changed'; state: LifecycleState; events: LifecycleEvent[] }
  /** Nothing to change: a duplicate, a late event, a repeated command. Version stays. */
  | { kind: 'unchanged' }
  /** A command that does not apply to the order's status. */
  | { kind: 'refused'; reason: 'invalid_transition'; detail: string };

const UNCHANGED: Transition = { kind: 'unchanged' };

export function decide(state: LifecycleState, input: LifecycleInput): Transition {
  switch (input.kind) {
    case 'StockReserved':
    case 'StockRejected':
      return onPartnerFact(state, { stock: input.kind === 'StockReserved' ? 'reserved' : 'rejected' });
    case 'PaymentCaptured':
    case 'PaymentFailed':
      return onPartnerFact(state, { payment: input.kind === 'PaymentCaptured' ? 'captured' : 'failed' });
    case 'cancel':
      return cancel(state);
    case 'ship':
      return ship(state);
  }
}

/** A partner's answer moves its own field once, from pending; then the status follows, if pending. */
function onPartnerFact(
  state: LifecycleState,
  fact: { stock: 'reserved' | 'rejected' } | { payment: 'captured' | 'failed' },
): Transition {
  if (state.status === 'shipped') return UNCHANGED;
  const field = 'stock' in fact ? 'stock' : 'payment';
  if (state[field] !== 'pending') return UNCHANGED; // a duplicate, or a late contradiction
  const next: LifecycleState = { ...state, ...fact };
  if (state.status !== 'pending') return { kind: 'changed', state: next, events: [] };
  if (next.stock === 'rejected' || next.payment === 'failed') {
    const reason = next.stock === 'rejected' ? 'stock_rejected' : 'payment_failed';
    return {
      kind: 'changed',
      state: { ...next, status: 'cancelled', cancellationReason: reason },
      events: ['OrderCancelled'],
    };
  }
  if (next.stock === 'reserved' && next.payment === 'captured') {
    return { kind: 'changed', state: { ...next, status: 'confirmed' }, events: ['OrderConfirmed'] };
  }
  return { kind: 'changed', state: next, events: [] };
}

function cancel(state: LifecycleState): Transition {
  switch (state.status) {
    case 'pending':
    case 'confirmed':
      return {
        kind: 'changed',
        state: { ...state, status: 'cancelled', cancellationReason: 'requested' },
        events: ['OrderCancelled'],
      };
    case 'cancelled':
      return UNCHANGED;
    case 'shipped':
      return {
        kind: 'refused',
        reason: 'invalid_transition',
        detail: 'A shipped order cannot be cancelled.',
      };
  }
}

function ship(state: LifecycleState): Transition {
  switch (state.status) {
    case 'confirmed':
      return { kind: 'changed', state: { ...state, status: 'shipped' }, events: ['OrderShipped'] };
    case 'shipped':
      return UNCHANGED;
    case 'pending':
      return {
        kind: 'refused',
        reason: 'invalid_transition',
        detail:
          'Only a confirmed order can be shipped; this one is still pending (stock or payment outstanding).',
      };
    case 'cancelled':
      return {
        kind: 'refused',
        reason: 'invalid_transition',
        detail: 'A cancelled order cannot be shipped.',
      };
  }
}
