/**
 * The outbox repository: the worker's statements on outbox_events (claim, complete, fail,
 * release, and the counts behind its gauges). What `orders events` runs is in outbox-admin.ts;
 * the retention purge is in the worker's housekeeping.
 *
 * Claiming is by status, never by "id greater than the last one seen": a transaction that
 * commits late with an older id would be skipped forever by a cursor, while a status scan finds
 * it on the next round. A claim is a lease: status `processing`, `locked_by` = the worker,
 * `locked_until` = now() + lease, `attempts` + 1. The lease is short and renewed by the worker's
 * heartbeat while it holds the event, so a crashed worker's events are claimable again within a
 * lease. Every later write for a claimed event, the renewal included, is fenced by
 * (id, locked_by, attempts): a worker whose lease expired and was re-claimed (by anyone, even
 * itself) changes nothing, so a slow worker can never overwrite a newer attempt's outcome.
 *
 * Work is batched: one statement claims a batch; one statement marks many events processed and
 * records their notifications; one statement reschedules or dead-letters many failures.
 */
import type { Queryable, QueryOptions } from '../platform/db.js';
import type { EventStatus } from './events.js';

export interface OutboxEvent {
  id: string;
  type: string;
  aggregateType: string;
  aggregateId: string;
  payload: unknown;
  traceContext: Record<string, string> | null;
  /** Attempts including the current one (claiming increments it): the fencing token. */
  attempts: number;
  createdAt: Date;
}

/**
 * A claim taken before its event is written: the in-process worker's offer to take a new event
 * as it commits. The writer inserts the event already claimed (status `processing`, `locked_by`
 * = workerId, attempt 1, `locked_until` = now() + lease), which spares the worker the claim's
 * round trip and row update. Exactly one of adopt() and cancel() is called.
 */
export interface PreClaim {
  workerId: string;
  leaseMs: number;
  /** The event committed as claimed: the worker holds it from now on. Never throws. */
  adopt(event: OutboxEvent): void;
  /**
   * Nothing was written, or it is unknown whether the write committed (the statement failed):
   * the worker's room is given back. An event that did commit waits for its lease to lapse and
   * is then claimed like a crashed worker's.
   */
  cancel(): void;
}

export interface ClaimResult {
  events: OutboxEvent[];
  /**
   * Milliseconds until the next event we know of becomes claimable (a pending event's backoff
   * ends, or a lease expires); null when there is none. Computed on the database clock.
   */
  nextDueInMs: number | null;
}

const CLAIM_SQL = `
WITH woken AS (
  SELECT id FROM outbox_events
  WHERE id = ANY($3::uuid[]) AND status = 'pending'
  LIMIT $1
  FOR UPDATE SKIP LOCKED
), expired AS (
  SELECT id FROM outbox_events
  WHERE status = 'processing' AND locked_until <= now()
  ORDER BY locked_until
  LIMIT greatest($1 - (SELECT count(*) FROM woken), 0)
  FOR UPDATE SKIP LOCKED
), due AS (
  SELECT id FROM outbox_events
  WHERE status = 'pending' AND available_at <= now() AND id <> ALL($3::uuid[])
  ORDER BY available_at
  LIMIT greatest($1 - (SELECT count(*) FROM woken) - (SELECT count(*) FROM expired), 0)
  FOR UPDATE SKIP LOCKED
), claimed AS (
  UPDATE outbox_events e
  SET status = 'processing', locked_by = $2, attempts = e.attempts + 1,
      locked_until = now() + make_interval(secs => $4::double precision)
  WHERE e.id IN (SELECT id FROM woken UNION ALL SELECT id FROM expired UNION ALL SELECT id FROM due)
  RETURNING e.id, e.type, e.aggregate_type, e.aggregate_id, e.payload, e.trace_context, e.attempts, e.created_at
)
SELECT c.*, NULL::double precision AS next_due_in_ms FROM claimed c
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  extract(epoch FROM least(
    (SELECT min(available_at) FROM outbox_events WHERE status = 'pending' AND available_at > now()),
    (SELECT min(locked_until) FROM outbox_events WHERE status = 'processing' AND locked_until > now())
  ) - now()) * 1000`;

interface ClaimRow {
  id: string | null;
  type: string;
  aggregate_type: string;
  aggregate_id: string;
  payload: unknown;
  trace_context: Record<string, string> | null;
  attempts: number;
  created_at: Date;
  next_due_in_ms: number | null;
}

/**
 * Claims up to `limit` events: first the woken ids that are still pending (whatever their
 * available_at, so a wake-up does not depend on the app and database clocks agreeing), then
 * expired leases (a crashed worker's events), then due pending events, oldest first.
 */
export async function claimEvents(
  db: Queryable,
  options: { workerId: string; limit: number; leaseMs: number; wokenIds?: readonly string[] },
  queryOptions?: QueryOptions,
): Promise<ClaimResult> {
  const result = await db.query<ClaimRow>(
    { name: 'outbox.claim', text: CLAIM_SQL },
    [options.limit, options.workerId, options.wokenIds ?? [], options.leaseMs / 1000],
    queryOptions,
  );
  const events: OutboxEvent[] = [];
  let nextDueInMs: number | null = null;
  for (const row of result.rows) {
    if (row.id === null) {
      nextDueInMs = row.next_due_in_ms === null ? null : Math.max(0, row.next_due_in_ms);
      continue;
    }
    events.push({
      id: row.id,
      type: row.type,
      aggregateType: row.aggregate_type,
      aggregateId: row.aggregate_id,
      payload: row.payload,
      traceContext: row.trace_context,
      attempts: row.attempts,
      createdAt: row.created_at,
    });
  }
  return { events, nextDueInMs };
}

/** What a successful handler asks to record with the event's completion. */
export interface NotificationRecord {
  orderId: string;
  customerId: string;
  channel: string;
}

export interface Completion {
  id: string;
  attempts: number;
  notification?: NotificationRecord | undefined;
}

export interface CompletedEvent {
  id: string;
  type: string;
  /** True when this completion inserted the notification row (false: it existed already). */
  notified: boolean;
  /** Seconds from the event's creation to its completion (database clock). */
  lagSeconds: number;
}

// One statement, hence one transaction: the event is marked processed and its notification
// recorded together, and the notification only for events this worker still held (fencing).
const COMPLETE_SQL = `
WITH input AS (
  SELECT * FROM unnest($1::uuid[], $2::int[]) AS t (id, attempts)
), done AS (
  UPDATE outbox_events e
  SET status = 'processed', processed_at = now(), locked_by = NULL, locked_until = NULL
  FROM input i
  WHERE e.id = i.id AND e.attempts = i.attempts AND e.status = 'processing' AND e.locked_by = $3
  RETURNING e.id, e.type, e.created_at
), notes AS (
  SELECT * FROM unnest($4::uuid[], $5::uuid[], $6::text[], $7::text[]) AS n (event_id, order_id, customer_id, channel)
), inserted AS (
  INSERT INTO notifications (event_id, order_id, customer_id, channel)
  SELECT n.event_id, n.order_id, n.customer_id, n.channel FROM notes n JOIN done d ON d.id = n.event_id
  ON CONFLICT (event_id) DO NOTHING
  RETURNING event_id
)
SELECT d.id, d.type, (i.event_id IS NOT NULL) AS notified,
       extract(epoch FROM clock_timestamp() - d.created_at)::double precision AS lag_seconds
FROM done d LEFT JOIN inserted i ON i.event_id = d.id`;

/**
 * Marks events processed and records their notifications idempotently
 * (`ON CONFLICT (event_id) DO NOTHING`), in one statement. Events whose lease this worker no
 * longer holds are left alone and are absent from the result.
 */
export async function completeEvents(
  db: Queryable,
  workerId: string,
  completions: readonly Completion[],
  queryOptions?: QueryOptions,
): Promise<CompletedEvent[]> {
  if (completions.length === 0) return [];
  const notes = completions.filter((c) => c.notification !== undefined);
  const result = await db.query<{ id: string; type: string; notified: boolean; lag_seconds: number }>(
    { name: 'outbox.complete', text: COMPLETE_SQL },
    [
      completions.map((c) => c.id),
      completions.map((c) => c.attempts),
      workerId,
      notes.map((c) => c.id),
      notes.map((c) => c.notification!.orderId),
      notes.map((c) => c.notification!.customerId),
      notes.map((c) => c.notification!.channel),
    ],
    queryOptions,
  );
  return result.rows.map((r) => ({
    id: r.id,
    type: r.type,
    notified: r.notified,
    lagSeconds: r.lag_seconds,
  }));
}

export interface Failure {
  id: string;
  attempts: number;
  /** Dead-letter now (permanent failure or attempts exhausted) instead of retrying. */
  dead: boolean;
  /** Backoff before the next attempt (ignored when dead). */
  delayMs: number;
  error: string;
}

const FAIL_SQL = `
UPDATE outbox_events e
SET status = CASE WHEN f.dead THEN 'dead' ELSE 'pending' END,
    available_at = CASE WHEN f.dead THEN e.available_at
                        ELSE now() + make_interval(secs => f.delay_ms / 1000.0) END,
    last_error = f.error, locked_by = NULL, locked_until = NULL
FROM unnest($1::uuid[], $2::int[], $3::boolean[], $4::double precision[], $5::text[])
  AS f (id, attempts, dead, delay_ms, error)
WHERE e.id = f.id AND e.attempts = f.attempts AND e.status = 'processing' AND e.locked_by = $6
RETURNING e.id, e.type, e.status`;

/** Reschedules (status pending, available_at = now() + backoff) or dead-letters failed events. */
export async function failEvents(
  db: Queryable,
  workerId: string,
  failures: readonly Failure[],
  queryOptions?: QueryOptions,
): Promise<{ id: string; type: string; status: EventStatus }[]> {
  if (failures.length === 0) return [];
  const result = await db.query<{ id: string; type: string; status: EventStatus }>(
    { name: 'outbox.fail', text: FAIL_SQL },
    [
      failures.map((f) => f.id),
      failures.map((f) => f.attempts),
      failures.map((f) => f.dead),
      failures.map((f) => f.delayMs),
      failures.map((f) => f.error),
      workerId,
    ],
    queryOptions,
  );
  return result.rows;
}

// A release is not the event's fault (the worker is shutting down), so the attempt it consumed
// is given back: a rolling deploy does not push events towards the dead-letter state.
const RELEASE_SQL = `
UPDATE outbox_events e
SET status = 'pending', locked_by = NULL, locked_until = NULL, available_at = now(),
    attempts = greatest(e.attempts - 1, 0)
FROM unnest($1::uuid[], $2::int[]) AS r (id, attempts)
WHERE e.id = r.id AND e.attempts = r.attempts AND e.status = 'processing' AND e.locked_by = $3`;

/** Gives claimed events back at once (pending, due now, attempt not counted). Returns how many. */
export async function releaseEvents(
  db: Queryable,
  workerId: string,
  events: readonly { id: string; attempts: number }[],
  queryOptions?: QueryOptions,
): Promise<number> {
  if (events.length === 0) return 0;
  const result = await db.query(
    { name: 'outbox.release', text: RELEASE_SQL },
    [events.map((e) => e.id), events.map((e) => e.attempts), workerId],
    queryOptions,
  );
  return result.rowCount ?? 0;
}

// Fenced like every write after a claim: only leases this worker still holds, for the attempt
// it holds, are extended. What it no longer holds is absent from the result.
const RENEW_SQL = `
UPDATE outbox_events e
SET locked_until = now() + make_interval(secs => $4::double precision)
FROM unnest($1::uuid[], $2::int[]) AS r (id, attempts)
WHERE e.id = r.id AND e.attempts = r.attempts AND e.status = 'processing' AND e.locked_by = $3
RETURNING e.id`;

/** Extends the leases of held events to now() + leaseMs; returns the ids it renewed. */
export async function renewLeases(
  db: Queryable,
  workerId: string,
  leases: readonly { id: string; attempts: number }[],
  leaseMs: number,
  queryOptions?: QueryOptions,
): Promise<string[]> {
  if (leases.length === 0) return [];
  const result = await db.query<{ id: string }>(
    { name: 'outbox.renew', text: RENEW_SQL },
    [leases.map((l) => l.id), leases.map((l) => l.attempts), workerId, leaseMs / 1000],
    queryOptions,
  );
  return result.rows.map((r) => r.id);
}

export interface OutboxStats {
  pending: number;
  processing: number;
  dead: number;
  /** Seconds the longest-waiting due pending event has been claimable (0 when none is due). */
  oldestPendingAgeSeconds: number;
}

/** Cheap counts for the metrics gauges: each reads one small partial index. */
export async function outboxStats(db: Queryable, queryOptions?: QueryOptions): Promise<OutboxStats> {
  const result = await db.query<{
    pending: number;
    processing: number;
    dead: number;
    oldest_pending_age_seconds: number | null;
  }>(
    {
      name: 'outbox.stats',
      text: `
SELECT (SELECT count(*) FROM outbox_events WHERE status = 'pending') AS pending,
       (SELECT count(*) FROM outbox_events WHERE status = 'processing') AS processing,
       (SELECT count(*) FROM outbox_events WHERE status = 'dead') AS dead,
       (SELECT extract(epoch FROM now() - min(available_at))::double precision
          FROM outbox_events WHERE status = 'pending' AND available_at <= now()) AS oldest_pending_age_seconds`,
    },
    undefined,
    queryOptions,
  );
  const row = result.rows[0];
  return {
    pending: row?.pending ?? 0,
    processing: row?.processing ?? 0,
    dead: row?.dead ?? 0,
    oldestPendingAgeSeconds: Math.max(0, row?.oldest_pending_age_seconds ?? 0),
  };
}
