/**
 * The outbox as operators see it: what `orders events list | retry` runs on outbox_events.
 */
import type { Queryable, QueryOptions } from '../platform/db.js';
import type { EventStatus } from './events.js';

export interface ListedEvent {
  id: string;
  orderId: string;
  type: string;
  status: EventStatus;
  attempts: number;
  createdAt: string;
  processedAt: string | null;
  lastError: string | null;
}

/** The newest events first, optionally of one status: what `orders events list` shows. */
export async function listOutboxEvents(
  db: Queryable,
  options: { status?: EventStatus | undefined; limit: number },
  queryOptions?: QueryOptions,
): Promise<ListedEvent[]> {
  const result = await db.query<{
    id: string;
    aggregate_id: string;
    type: string;
    status: EventStatus;
    attempts: number;
    created_at: Date;
    processed_at: Date | null;
    last_error: string | null;
  }>(
    `SELECT id, aggregate_id, type, status, attempts, created_at, processed_at, last_error
     FROM outbox_events WHERE ($1::text IS NULL OR status = $1)
     ORDER BY created_at DESC, id DESC LIMIT $2`,
    [options.status ?? null, options.limit],
    queryOptions,
  );
  return result.rows.map((r) => ({
    id: r.id,
    orderId: r.aggregate_id,
    type: r.type,
    status: r.status,
    attempts: r.attempts,
    createdAt: r.created_at.toISOString(),
    processedAt: r.processed_at ? r.processed_at.toISOString() : null,
    lastError: r.last_error,
  }));
}

export interface RetryResult {
  /** Ids put back to pending. */
  retried: string[];
  /** Requested ids that exist but are not dead-lettered, with their status (left unchanged). */
  notDead: { id: string; status: EventStatus }[];
  /** Requested ids that do not exist. */
  notFound: string[];
}

/**
 * Puts dead-lettered events back to pending, due now, with attempts reset to 0. `last_error` is
 * kept: it is the operator's record of why the event died, and the next failure overwrites it.
 * Only dead events are touched, so running the same retry twice changes nothing the second time.
 */
export async function retryDeadEvents(
  db: Queryable,
  target: { ids: readonly string[] } | { allDead: true },
  queryOptions?: QueryOptions,
): Promise<RetryResult> {
  if ('allDead' in target) {
    const result = await db.query<{ id: string }>(
      `UPDATE outbox_events
       SET status = 'pending', attempts = 0, available_at = now(), locked_by = NULL, locked_until = NULL
       WHERE status = 'dead' RETURNING id`,
      undefined,
      queryOptions,
    );
    return { retried: result.rows.map((r) => r.id), notDead: [], notFound: [] };
  }
  const ids = [...new Set(target.ids.map((id) => id.toLowerCase()))];
  const result = await db.query<{ id: string; status: EventStatus; retried: boolean }>(
    `WITH requested AS (
       SELECT DISTINCT unnest($1::uuid[]) AS id
     ), retried AS (
       UPDATE outbox_events e
       SET status = 'pending', attempts = 0, available_at = now(), locked_by = NULL, locked_until = NULL
       FROM requested r
       WHERE e.id = r.id AND e.status = 'dead'
       RETURNING e.id
     )
     SELECT r.id, e.status, (t.id IS NOT NULL) AS retried
     FROM requested r
     LEFT JOIN outbox_events e ON e.id = r.id
     LEFT JOIN retried t ON t.id = r.id`,
    [ids],
    queryOptions,
  );
  const out: RetryResult = { retried: [], notDead: [], notFound: [] };
  for (const row of result.rows) {
    if (row.retried) out.retried.push(row.id);
    else if (row.status === null) out.notFound.push(row.id);
    else out.notDead.push({ id: row.id, status: row.status });
  }
  return out;
}
