import { describe, expect, it } from 'vitest';
import { authorize, idempotencyScope, type Operation } from '../../src/auth/policy.js';
import type { Caller } from '../../src/auth/verifier.js';

const caller = (...scopes: string[]): Caller => ({ subject: 'c-1', scopes: new Set(scopes) });
const OPERATIONS: Operation[] = ['create', 'read', 'list', 'cancel', 'ship'];

/** What each single scope allows, per operation: 'own' (restricted to the caller), 'any', or refused. */
const TABLE: Record<string, Record<Operation, 'own' | 'any' | 'refused'>> = {
  'orders:read': { create: 'refused', read: 'own', list: 'own', cancel: 'refused', ship: 'refused' },
  'orders:write': { create: 'own', read: 'refused', list: 'refused', cancel: 'own', ship: 'refused' },
  'orders:fulfil': { create: 'refused', read: 'any', list: 'refused', cancel: 'refused', ship: 'any' },
  'orders:admin': { create: 'any', read: 'any', list: 'any', cancel: 'any', ship: 'any' },
  'orders:other': { create: 'refused', read: 'refused', list: 'refused', cancel: 'refused', ship: 'refused' },
};

describe('authorize: every scope × operation', () => {
  for (const [scope, row] of Object.entries(TABLE)) {
    for (const operation of OPERATIONS) {
      it(`${scope} → ${operation}: ${row[operation]}`, () => {
        const decision = authorize(caller(scope), operation);
        if (row[operation] === 'refused') {
          expect(decision).toMatchObject({ allowed: false, reason: 'insufficient_scope' });
        } else {
          expect(decision).toEqual({ allowed: true, customerId: row[operation] === 'own' ? 'c-1' : null });
        }
      });
    }
  }
});

describe('authorize: customers act only for themselves', () => {
  it('names the scope to ask for when refusing', () => {
    expect(authorize(caller('orders:read'), 'create')).toEqual({
      allowed: false,
      reason: 'insufficient_scope',
      scope: 'orders:write',
    });
    expect(authorize(caller('orders:write'), 'ship')).toMatchObject({ scope: 'orders:fulfil' });
  });

  it('refuses another customer on create and list, allows naming oneself', () => {
    expect(authorize(caller('orders:write'), 'create', 'c-2')).toEqual({
      allowed: false,
      reason: 'other_customer',
    });
    expect(authorize(caller('orders:read'), 'list', 'c-2')).toEqual({
      allowed: false,
      reason: 'other_customer',
    });
    expect(authorize(caller('orders:write'), 'create', 'c-1')).toEqual({ allowed: true, customerId: 'c-1' });
  });

  it('lets admin name any customer; fulfil lists only as a customer would', () => {
    expect(authorize(caller('orders:admin'), 'create', 'c-9')).toEqual({ allowed: true, customerId: 'c-9' });
    expect(authorize(caller('orders:fulfil', 'orders:read'), 'list', 'c-9')).toEqual({
      allowed: false,
      reason: 'other_customer',
    });
    expect(authorize(caller('orders:fulfil', 'orders:read'), 'list')).toEqual({
      allowed: true,
      customerId: 'c-1',
    });
  });

  it('a fulfil token that also writes still cancels only its own orders', () => {
    expect(authorize(caller('orders:fulfil', 'orders:write'), 'cancel')).toEqual({
      allowed: true,
      customerId: 'c-1',
    });
  });

  it('without authentication (AUTH_MODE=none) allows everything for any customer', () => {
    for (const operation of OPERATIONS) {
      expect(authorize(undefined, operation)).toEqual({ allowed: true, customerId: null });
    }
    expect(authorize(undefined, 'list', 'c-2')).toEqual({ allowed: true, customerId: 'c-2' });
  });

  it('scopes Idempotency-Keys to the caller', () => {
    expect(idempotencyScope(caller('orders:write'))).toBe('c-1');
    expect(idempotencyScope(undefined)).toBe('');
  });
});
