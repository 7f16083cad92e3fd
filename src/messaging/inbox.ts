/**
 * The inbox: consumed events (Catalog's and Payments') applied to their orders exactly once.
 *
 * A valid event is applied in ONE transaction: its inbox row is inserted (keyed by the
 * CloudEvents source and id) and the order transitions (orders/transitions.ts: lock, state
 * machine, update, outbox). A key conflict is a duplicate (a redelivery, a second publish under
 * another Nats-Msg-Id): the transaction changes nothing. As the row commits with the effect, a
 * crash between commit and ack only leads to a redelivery that is a duplicate (Eventuate Tram's
 * received_messages).
 *
 * A message that can never be applied (malformed, wrong type for its subject, invalid data, an
 * unknown order, a payment of another amount) changes nothing and is recorded `dead` with its
 * reason and the message as received, in one statement; its caller acks it so nothing behind it
 * waits. Transient failures (the database down, a lost lock race) throw: the caller redelivers
 * later. `retry` applies dead entries again from their stored message (`orders inbox retry`).
 */

import {
  LOCKED_ORDER_COLUMNS,
  type LockedOrderRow,
  type TransitionResult,
  transitionLockedOrder,
  transitionOrder,
} from '../orders/transitions.js';
import type { Queryable, QueryOptions, Transactional } from '../platform/db.js';
import { describeFailure, isRetryableFailure } from '../platform/failures.js';
import type { Metrics } from '../platform/metrics.js';
import type { ConsumedEventData } from './events.js';
import {
  bodyText,
  deadReason,
  type InboundIdentity,
  type InboundMessage,
  type ParsedMessage,
  parseInbound,
  typeOfSubject,
} from './inbox-message.js';

export type { InboundMessage } from './inbox-message.js';

export type InboxOutcome = 'applied' | 'unchanged' | 'duplicate' | 'dead';

export interface ReceiveResult {
  outcome: InboxOutcome;
  identity: InboundIdentity;
  /** Why it is dead (outcome `dead`). */
  reason?: string | undefined;
  /** Outbox events the change wrote (committed): wake the worker for them. */
  eventIds: string[];
  /** The order's status move, when the change moved it. */
  statusChange?: { from: string; to: string } | null | undefined;
}

export interface ReceiveOptions extends QueryOptions {
  /** Counts orders_inbound_events_total, and orders_status_transitions_total for what they moved. */
  metrics?: Pick<Metrics, 'inboundEvents' | 'statusTransitions'> | undefined;
  /** Called for each outbox event a committed change wrote (wakes the in-process worker). */
  onEventCommitted?: ((eventId: string) => void) | undefined;
  /** Only tests set it: consumed subjects carry this prefix (so runs on one NATS never meet). */
  subjectPrefix?: string | undefined;
}

/** statement_timeout (or a cancel that was not ours: ours aborts the signal first). */
const QUERY_CANCELED = '57014';

/** A failure that rolls the transaction back and makes the message dead. */
class Rejected extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

const INSERT_PROCESSED_SQL = `
INSERT INTO inbox_messages AS m (source, id, type, subject, order_id, status, body, headers, processed_at)
VALUES ($1, $2, $3, $4, $5, 'processed', $6, $7::jsonb, now())
ON CONFLICT (source, id) DO NOTHING
RETURNING 1`;

/**
 * INSERT_PROCESSED_SQL and the order's lock (transitions.ts's first step) in one round trip: the
 * lock is taken only when the row was recorded (a duplicate locks nothing); `recorded` is 0 for a
 * duplicate, and the order's columns are null when there is no such order.
 */
const INSERT_PROCESSED_AND_LOCK_SQL = `
WITH recorded AS (${INSERT_PROCESSED_SQL}
)
SELECT r.recorded, locked.*
FROM (SELECT count(*)::int AS recorded FROM recorded) r
LEFT JOIN LATERAL (
  SELECT ${LOCKED_ORDER_COLUMNS}
  FROM orders o WHERE o.id = $5 AND r.recorded > 0
  FOR UPDATE OF o
) locked ON true`;

/** `orders inbox retry`: the dead entry becomes processed in the transaction of its change. */
const REVIVE_SQL = `
UPDATE inbox_messages SET status = 'processed', reason = NULL, processed_at = now(), type = $3, order_id = $4
WHERE source = $1 AND id = $2 AND status = 'dead'
RETURNING 1`;

/** The first record of a message wins: a redelivered poison message is a duplicate. */
const INSERT_DEAD_SQL = `
INSERT INTO inbox_messages (source, id, type, subject, order_id, status, reason, body, headers)
VALUES ($1, $2, $3, $4, $5, 'dead', $6, $7, $8::jsonb)
ON CONFLICT (source, id) DO NOTHING
RETURNING 1`;

const REASON_AGAIN_SQL = `
UPDATE inbox_messages SET reason = $3 WHERE source = $1 AND id = $2 AND status = 'dead'`;

/**
 * Applies one consumed message, or records it dead. Resolves once the outcome is committed (the
 * caller may ack then); rejects on a transient failure (nothing committed: redeliver later).
 */
export function receive(
  db: Transactional,
  message: InboundMessage,
  options: ReceiveOptions = {},
): Promise<ReceiveResult> {
  return handle(db, message, parseInbound(message, options), undefined, options);
}

async function handle(
  db: Transactional,
  message: InboundMessage,
  parsed: ParsedMessage,
  revive: Pick<InboundIdentity, 'source' | 'id'> | undefined,
  options: ReceiveOptions,
): Promise<ReceiveResult> {
  // A retried entry keeps the identity it was recorded under (an assigned id stays the same).
  const identity = revive ? { ...parsed.identity, source: revive.source, id: revive.id } : parsed.identity;
  let result: ReceiveResult;
  if (!parsed.ok) {
    result = await recordDead(db, message, identity, parsed.reason, revive !== undefined, options);
  } else {
    try {
      result = await apply(db, message, { ...parsed, identity }, revive !== undefined, options);
    } catch (error) {
      if (!(error instanceof Rejected) && (options.signal?.aborted || isTransient(error))) throw error;
      const reason =
        error instanceof Rejected ? error.reason : deadReason('failed', describeFailure(error, 300));
      result = await recordDead(db, message, identity, reason, revive !== undefined, options);
    }
  }
  const known = typeOfSubject(message.subject, options.subjectPrefix) ?? 'unknown';
  options.metrics?.inboundEvents.inc({
    type: known,
    outcome:
      revive && result.outcome !== 'dead' && result.outcome !== 'duplicate' ? 'retried' : result.outcome,
  });
  if (result.statusChange) options.metrics?.statusTransitions.inc(result.statusChange);
  for (const id of result.eventIds) options.onEventCommitted?.(id);
  return result;
}

async function apply(
  db: Transactional,
  message: InboundMessage,
  parsed: Extract<ParsedMessage, { ok: true }>,
  revive: boolean,
  options: ReceiveOptions,
): Promise<ReceiveResult> {
  const { identity, data } = parsed;
  const orderId = data.orderId.toLowerCase();
  const request = {
    orderId,
    input: parsed.input,
    visibleTo: { customerId: null },
    traceContext: parsed.traceContext,
    check:
      parsed.type === 'PaymentCaptured'
        ? paymentCheck(data as ConsumedEventData<'PaymentCaptured'>)
        : undefined,
  };
  return db.transaction(async (tx) => {
    let transition: TransitionResult;
    if (revive) {
      const revived = await tx.query(
        REVIVE_SQL,
        [identity.source, identity.id, parsed.type, orderId],
        options,
      );
      if (revived.rowCount === 0) return { outcome: 'duplicate', identity, eventIds: [] };
      transition = await transitionOrder(tx, request, options);
    } else {
      const recorded = await tx.query<{ recorded: number } & LockedOrderRow>(
        { name: 'inbox.insert_processed_lock', text: INSERT_PROCESSED_AND_LOCK_SQL },
        [
          identity.source,
          identity.id,
          parsed.type,
          message.subject,
          orderId,
          storable(bodyText(message.body)),
          headersJson(message.headers),
        ],
        options,
      );
      const row = recorded.rows[0];
      if (!row || row.recorded === 0) return { outcome: 'duplicate', identity, eventIds: [] };
      transition = await transitionLockedOrder(tx, request, row.id === null ? undefined : row, options);
    }
    switch (transition.outcome) {
      case 'changed':
        return {
          outcome: 'applied',
          identity,
          eventIds: transition.eventIds,
          statusChange: transition.statusChange,
        };
      case 'unchanged':
        return { outcome: 'unchanged', identity, eventIds: [] };
      case 'not_found':
        throw new Rejected(deadReason('unknown_order', `no order with id ${orderId}`));
      case 'rejected':
        throw new Rejected(transition.reason);
      default:
        // Consumed events are facts, never refused and without preconditions: a bug if reached.
        throw new Rejected(deadReason('failed', `the order's transition answered ${transition.outcome}`));
    }
  }, options);
}

/** PaymentCaptured must be for the order's total, in its currency. */
function paymentCheck({ amount, currency }: ConsumedEventData<'PaymentCaptured'>) {
  return (order: { total: number; currency: string }): string | undefined =>
    amount === order.total && currency === order.currency
      ? undefined
      : deadReason(
          'amount_mismatch',
          `captured ${amount} ${currency}, but the order's total is ${order.total} ${order.currency}`,
        );
}

async function recordDead(
  db: Queryable,
  message: InboundMessage,
  identity: InboundIdentity,
  reason: string,
  revive: boolean,
  options: QueryOptions,
): Promise<ReceiveResult> {
  if (revive) {
    // Still dead on retry: the entry stays, with the latest reason.
    await db.query(REASON_AGAIN_SQL, [identity.source, identity.id, reason], options);
    return { outcome: 'dead', identity, reason, eventIds: [] };
  }
  const inserted = await db.query(
    { name: 'inbox.insert_dead', text: INSERT_DEAD_SQL },
    [
      identity.source,
      identity.id,
      identity.type,
      message.subject,
      identity.orderId,
      reason,
      storable(bodyText(message.body)),
      headersJson(message.headers),
    ],
    options,
  );
  return { outcome: inserted.rowCount === 0 ? 'duplicate' : 'dead', identity, reason, eventIds: [] };
}

export interface InboxRetryResult {
  /** Dead entries applied (or recorded as no-ops) this time: now processed. */
  applied: number;
  /** Entries still dead, with the reason they failed again. */
  stillDead: { source: string; id: string; reason: string }[];
  /** Requested ids with no dead entry (unknown, or already processed). */
  notDead: string[];
}

// received_at travels as text: a JS Date keeps milliseconds, the column microseconds, and a
// cursor rounded down would return the previous page's last row again.
const DEAD_ENTRIES_SQL = `
SELECT received_at::text AS received_at, source, id, subject, body, headers FROM inbox_messages
WHERE status = 'dead' AND ($1::text[] IS NULL OR id = ANY($1))
  AND (received_at, source, id) > ($2::timestamptz, $3::text, $4::text)
ORDER BY received_at, source, id
LIMIT $5`;

/**
 * Applies dead entries again from their stored message: those with these ids (every source), or
 * every dead entry. Each is applied as if it had just arrived, in a transaction of its own; one
 * that fails again stays dead with its new reason. Transient failures throw.
 */
export async function retry(
  db: Transactional,
  target: readonly string[] | 'dead',
  options: ReceiveOptions = {},
): Promise<InboxRetryResult> {
  const ids = target === 'dead' ? null : [...new Set(target)];
  const out: InboxRetryResult = { applied: 0, stillDead: [], notDead: [] };
  const seen = new Set<string>();
  let after: [string, string, string] = ['-infinity', '', ''];
  for (;;) {
    const page = await db.query<{
      source: string;
      id: string;
      subject: string;
      body: string;
      headers: Record<string, string>;
      received_at: string;
    }>(DEAD_ENTRIES_SQL, [ids, ...after, 100], options);
    for (const row of page.rows) {
      seen.add(row.id);
      const message: InboundMessage = { subject: row.subject, body: row.body, headers: row.headers };
      const result = await handle(db, message, parseInbound(message, options), row, options);
      if (result.outcome === 'applied' || result.outcome === 'unchanged') out.applied++;
      else if (result.outcome === 'dead')
        out.stillDead.push({ source: row.source, id: row.id, reason: result.reason ?? '' });
    }
    const last = page.rows.at(-1);
    if (!last || page.rows.length < 100) break;
    after = [last.received_at, last.source, last.id];
  }
  if (ids) out.notDead = ids.filter((id) => !seen.has(id));
  return out;
}

/**
 * Worth redelivering: the database down, a lost lock race, a statement that timed out. Anything
 * else (a bug, a row the schema refuses) would fail the same way every time: recorded dead, so
 * it cannot loop forever, and `orders inbox retry` applies it once fixed.
 */
function isTransient(error: unknown): boolean {
  return isRetryableFailure(error) || (error as { code?: unknown })?.code === QUERY_CANCELED;
}

/** PostgreSQL text and jsonb cannot hold U+0000: a message carrying one is stored with U+FFFD. */
function storable(text: string): string {
  return text.includes('\u0000') ? text.replaceAll('\u0000', '\uFFFD') : text;
}

function headersJson(headers: Record<string, string> | undefined): string {
  const clean: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) clean[storable(name)] = storable(String(value));
  return JSON.stringify(clean);
}
