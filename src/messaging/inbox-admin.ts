/**
 * The inbox as operators see it: what `orders inbox list` reads of inbox_messages (`retry` is
 * inbox.ts's: it applies messages, which is the inbox's own work).
 */
import type { Queryable, QueryOptions } from '../platform/db.js';
import type { InboxStatus } from './events.js';

/** The contract's `orders inbox list --json` object. */
export interface ListedInboxMessage {
  id: string;
  source: string;
  type: string;
  orderId: string | null;
  status: InboxStatus;
  reason: string | null;
  receivedAt: string;
  processedAt: string | null;
}

/** The newest first, optionally of one status. */
export async function listInboxMessages(
  db: Queryable,
  options: { status?: InboxStatus | undefined; limit: number },
  queryOptions?: QueryOptions,
): Promise<ListedInboxMessage[]> {
  const result = await db.query<{
    id: string;
    source: string;
    type: string;
    order_id: string | null;
    status: InboxStatus;
    reason: string | null;
    received_at: Date;
    processed_at: Date | null;
  }>(
    // Unnamed: run once per command, nothing to gain from a prepared statement.
    {
      text: `SELECT id, source, type, order_id, status, reason, received_at, processed_at
             FROM inbox_messages WHERE ($1::text IS NULL OR status = $1)
             ORDER BY received_at DESC, source DESC, id DESC LIMIT $2`,
    },
    [options.status ?? null, options.limit],
    queryOptions,
  );
  return result.rows.map((r) => ({
    id: r.id,
    source: r.source,
    type: r.type,
    orderId: r.order_id,
    status: r.status,
    reason: r.reason,
    receivedAt: r.received_at.toISOString(),
    processedAt: r.processed_at ? r.processed_at.toISOString() : null,
  }));
}
