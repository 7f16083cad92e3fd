import { describe, expect, it } from 'vitest';
import { OrderInput, orderTotal } from '../../src/orders/schemas.js';
import { fromZod } from '../../src/server/problem.js';

const valid = {
  customerId: 'c-42',
  currency: 'EUR',
  items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 1999 }],
};

function errorsOf(input: unknown) {
  const result = OrderInput.safeParse(input);
  if (result.success) return [];
  return fromZod(result.error, 'body').errors ?? [];
}

describe('OrderInput', () => {
  it('accepts a valid order and computes its total', () => {
    expect(OrderInput.parse(valid)).toEqual(valid);
    expect(
      orderTotal([
        { quantity: 2, unitPrice: 1999 },
        { quantity: 3, unitPrice: 1 },
      ]),
    ).toBe(4001);
  });

  it('does not coerce types', () => {
    expect(errorsOf({ ...valid, items: [{ sku: 'S', quantity: '2', unitPrice: 1 }] })).toEqual([
      expect.objectContaining({ path: '/items/0/quantity' }),
    ]);
  });

  it('rejects unknown fields, at any depth, naming them', () => {
    const errors = errorsOf({ ...valid, extra: 1, items: [{ ...valid.items[0], note: 'x' }] });
    expect(errors.map((e) => e.path).sort()).toEqual(['/extra', '/items/0/note']);
  });

  it.each([
    ['customerId empty', { ...valid, customerId: '' }, '/customerId'],
    ['customerId 65 chars', { ...valid, customerId: 'x'.repeat(65) }, '/customerId'],
    ['control character', { ...valid, customerId: 'a\u0000b' }, '/customerId'],
    ['DEL character', { ...valid, customerId: 'a\u007fb' }, '/customerId'],
    ['unpaired surrogate', { ...valid, customerId: 'a\ud800b' }, '/customerId'],
    ['lowercase currency', { ...valid, currency: 'eur' }, '/currency'],
    ['no items', { ...valid, items: [] }, '/items'],
    ['101 items', { ...valid, items: Array.from({ length: 101 }, () => valid.items[0]) }, '/items'],
    ['quantity 0', { ...valid, items: [{ ...valid.items[0], quantity: 0 }] }, '/items/0/quantity'],
    ['quantity 10001', { ...valid, items: [{ ...valid.items[0], quantity: 10_001 }] }, '/items/0/quantity'],
    ['fractional quantity', { ...valid, items: [{ ...valid.items[0], quantity: 1.5 }] }, '/items/0/quantity'],
    ['negative price', { ...valid, items: [{ ...valid.items[0], unitPrice: -1 }] }, '/items/0/unitPrice'],
    [
      'price above limit',
      { ...valid, items: [{ ...valid.items[0], unitPrice: 1e12 + 1 }] },
      '/items/0/unitPrice',
    ],
    ['sku 65 chars', { ...valid, items: [{ ...valid.items[0], sku: 's'.repeat(65) }] }, '/items/0/sku'],
  ])('rejects %s at %s', (_name, input, path) => {
    expect(errorsOf(input).map((e) => e.path)).toContain(path);
  });

  it('accepts the limits themselves', () => {
    const input = {
      customerId: 'x'.repeat(64),
      currency: 'JPY',
      items: [{ sku: 's'.repeat(64), quantity: 10_000, unitPrice: 0 }],
    };
    expect(OrderInput.safeParse(input).success).toBe(true);
  });

  it('rejects a total that is not a safe integer', () => {
    const items = Array.from({ length: 100 }, (_, i) => ({
      sku: `S${i}`,
      quantity: 10_000,
      unitPrice: 1e12,
    }));
    expect(errorsOf({ ...valid, items })).toEqual([expect.objectContaining({ path: '/items' })]);
  });

  it('escapes JSON Pointer tokens', () => {
    const errors = errorsOf({ ...valid, 'a/b~c': 1 });
    expect(errors[0]?.path).toBe('/a~1b~0c');
  });
});
