/**
 * Authorization, in one place: which scopes allow which operation, and whose orders a caller
 * may touch. Routes ask `authorize(caller, operation)` and hand the answer's `customerId` to the
 * repository, which filters by it in SQL: another customer's order is then simply not found (404,
 * the same body as an unknown id: existence is not revealed), and an ownership check can never
 * be forgotten between a read and a write.
 *
 * | scope           | allows                                                          |
 * | orders:read     | read and list one's own orders and their events                |
 * | orders:write    | create orders for oneself, cancel one's own orders              |
 * | orders:fulfil   | read any order and its events, ship any order                   |
 * | orders:admin    | everything, for any customer                                    |
 *
 * A caller without orders:admin is the customer its `sub` names. With AUTH_MODE=none there is
 * no caller: every operation is allowed for any customer (the pre-authentication behaviour).
 */
import type { Caller } from './verifier.js';

export const SCOPES = {
  read: 'orders:read',
  write: 'orders:write',
  fulfil: 'orders:fulfil',
  admin: 'orders:admin',
} as const;

export type Operation = 'create' | 'read' | 'list' | 'cancel' | 'ship';

/** The scopes that allow each operation (any one suffices); the first is the one to ask for. */
export const OPERATION_SCOPES: Readonly<Record<Operation, readonly string[]>> = {
  create: [SCOPES.write, SCOPES.admin],
  read: [SCOPES.read, SCOPES.fulfil, SCOPES.admin],
  list: [SCOPES.read, SCOPES.admin],
  cancel: [SCOPES.write, SCOPES.admin],
  ship: [SCOPES.fulfil, SCOPES.admin],
};

export type Decision =
  /** Allowed; `customerId` restricts the operation to that customer's orders (null: any). */
  | { allowed: true; customerId: string | null }
  | { allowed: false; reason: 'insufficient_scope'; scope: string }
  | { allowed: false; reason: 'other_customer' };

const ANY: Decision = { allowed: true, customerId: null };

/**
 * May `caller` perform `operation`, and on whose orders? `requestedCustomerId` is the customer
 * the request names (the body's customerId on create, the filter on list), if any.
 */
export function authorize(
  caller: Caller | undefined,
  operation: Operation,
  requestedCustomerId?: string,
): Decision {
  if (!caller)
    return requestedCustomerId === undefined ? ANY : { allowed: true, customerId: requestedCustomerId };
  const allowedBy = OPERATION_SCOPES[operation];
  if (!allowedBy.some((scope) => caller.scopes.has(scope))) {
    return { allowed: false, reason: 'insufficient_scope', scope: allowedBy[0]! };
  }
  if (caller.scopes.has(SCOPES.admin)) {
    return { allowed: true, customerId: requestedCustomerId ?? null };
  }
  // fulfil reads any order (by id) and ships any order. Listing every customer's orders is
  // orders:admin's alone (the contract): a fulfil token that may also list sees its own.
  if (caller.scopes.has(SCOPES.fulfil) && (operation === 'read' || operation === 'ship')) {
    return { allowed: true, customerId: requestedCustomerId ?? null };
  }
  if (requestedCustomerId !== undefined && requestedCustomerId !== caller.subject) {
    return { allowed: false, reason: 'other_customer' };
  }
  return { allowed: true, customerId: caller.subject };
}

/** Idempotency-Keys belong to the caller: two callers never share one (one global scope without auth). */
export function idempotencyScope(caller: Caller | undefined): string {
  return caller ? caller.subject : '';
}
