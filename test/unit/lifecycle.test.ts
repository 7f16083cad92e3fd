/**
 * Every cell of the lifecycle: 4 statuses × 3 stock × 3 payment states × 6 inputs, each checked
 * against the contract's sentences ("The order lifecycle"), plus both arrival orders, duplicates
 * and late events as sequences.
 */
import { describe, expect, it } from 'vitest';
import {
  decide,
  type LifecycleInput,
  type LifecycleState,
  ORDER_STATUSES,
  PAYMENT_STATES,
  STOCK_STATES,
} from '../../src/orders/lifecycle.js';

const INPUTS: LifecycleInput['kind'][] = [
  'StockReserved',
  'StockRejected',
  'PaymentCaptured',
  'PaymentFailed',
  'cancel',
  'ship',
];
const initial: LifecycleState = {
  status: 'pending',
  stock: 'pending',
  payment: 'pending',
  cancellationReason: null,
};

/** The contract, sentence by sentence, as the expected outcome of one cell. */
function expected(s: LifecycleState, input: LifecycleInput['kind']) {
  const partner = {
    StockReserved: ['stock', 'reserved'],
    StockRejected: ['stock', 'rejected'],
    PaymentCaptured: ['payment', 'captured'],
    PaymentFailed: ['payment', 'failed'],
  } as const;
  if (input === 'cancel') {
    if (s.status === 'shipped') return 'refused';
    if (s.status === 'cancelled') return 'unchanged';
    return { ...s, status: 'cancelled', cancellationReason: 'requested', events: ['OrderCancelled'] };
  }
  if (input === 'ship') {
    if (s.status === 'shipped') return 'unchanged';
    if (s.status !== 'confirmed') return 'refused';
    return { ...s, status: 'shipped', events: ['OrderShipped'] };
  }
  // "an event about a shipped order changes nothing"; a field moves only from pending.
  const [field, value] = partner[input];
  if (s.status === 'shipped' || s[field] !== 'pending') return 'unchanged';
  const next = { ...s, [field]: value };
  // "An event about a cancelled order updates stock/payment but never moves status."
  if (s.status !== 'pending') return { ...next, events: [] };
  if (next.stock === 'rejected')
    return { ...next, status: 'cancelled', cancellationReason: 'stock_rejected', events: ['OrderCancelled'] };
  if (next.payment === 'failed')
    return { ...next, status: 'cancelled', cancellationReason: 'payment_failed', events: ['OrderCancelled'] };
  if (next.stock === 'reserved' && next.payment === 'captured')
    return { ...next, status: 'confirmed', events: ['OrderConfirmed'] };
  return { ...next, events: [] };
}

describe('decide: every cell', () => {
  for (const status of ORDER_STATUSES) {
    for (const stock of STOCK_STATES) {
      for (const payment of PAYMENT_STATES) {
        const state: LifecycleState = {
          status,
          stock,
          payment,
          cancellationReason: status === 'cancelled' ? 'requested' : null,
        };
        for (const input of INPUTS) {
          it(`${status}/${stock}/${payment} + ${input}`, () => {
            const result = decide(state, { kind: input } as LifecycleInput);
            const want = expected(state, input);
            if (want === 'refused')
              expect(result).toMatchObject({ kind: 'refused', reason: 'invalid_transition' });
            else if (want === 'unchanged') expect(result).toEqual({ kind: 'unchanged' });
            else {
              const { events, ...next } = want;
              expect(result).toEqual({ kind: 'changed', state: next, events });
            }
          });
        }
      }
    }
  }
});

function run(...inputs: LifecycleInput['kind'][]) {
  let state = initial;
  const published: string[] = [];
  let versions = 0;
  for (const kind of inputs) {
    const result = decide(state, { kind } as LifecycleInput);
    if (result.kind === 'changed') {
      state = result.state;
      published.push(...result.events);
      versions++;
    }
  }
  return { state, published, versions };
}

describe('decide: sequences', () => {
  it('confirms once whichever partner answers first', () => {
    for (const order of [
      ['StockReserved', 'PaymentCaptured'],
      ['PaymentCaptured', 'StockReserved'],
    ] as const) {
      const r = run(...order);
      expect(r.state).toMatchObject({ status: 'confirmed', stock: 'reserved', payment: 'captured' });
      expect(r.published).toEqual(['OrderConfirmed']);
      expect(r.versions).toBe(2);
    }
  });

  it('applies duplicates once: no new version, no second event', () => {
    const r = run('StockReserved', 'StockReserved', 'PaymentCaptured', 'PaymentCaptured', 'StockReserved');
    expect(r.published).toEqual(['OrderConfirmed']);
    expect(r.versions).toBe(2);
  });

  it('cancels on the first refusal and records the late answer without moving the status', () => {
    const r = run('PaymentFailed', 'StockReserved');
    expect(r.state).toEqual({
      status: 'cancelled',
      stock: 'reserved',
      payment: 'failed',
      cancellationReason: 'payment_failed',
    });
    expect(r.published).toEqual(['OrderCancelled']);
    const both = run('StockRejected', 'PaymentFailed');
    expect(both.state.cancellationReason).toBe('stock_rejected');
    expect(both.published).toEqual(['OrderCancelled']);
  });

  it('a customer cancel wins over late confirmations', () => {
    const r = run('cancel', 'StockReserved', 'PaymentCaptured');
    expect(r.state).toMatchObject({
      status: 'cancelled',
      cancellationReason: 'requested',
      stock: 'reserved',
      payment: 'captured',
    });
    expect(r.published).toEqual(['OrderCancelled']);
  });

  it('ships a confirmed order once; a shipped order cannot be cancelled and ignores events', () => {
    const r = run('StockReserved', 'PaymentCaptured', 'ship', 'ship', 'PaymentFailed');
    expect(r.state.status).toBe('shipped');
    expect(r.published).toEqual(['OrderConfirmed', 'OrderShipped']);
    expect(decide(r.state, { kind: 'cancel' })).toMatchObject({ kind: 'refused' });
  });
});
