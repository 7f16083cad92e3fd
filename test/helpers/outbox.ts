/** Outbox fixtures for worker tests: events inserted directly, their rows, a wait, a counting notifier. */
import type { Db } from '../../src/platform/db.js';
import { TransientError } from '../../src/platform/failures.js';
import { sleep } from '../../src/platform/shutdown.js';
import type { Notifier } from '../../src/worker/notifier.js';

/** Inserts `count` OrderCreated events directly (as the orders statement does); returns their ids. */
export async function insertEvents(db: Db, count: number, type = 'OrderCreated'): Promise<string[]> {
  const result = await db.query<{ id: string }>(
    `INSERT INTO outbox_events (id, aggregate_type, aggregate_id, type, payload)
     SELECT gen_random_uuid(), 'order', x.order_id, $2,
            jsonb_build_object('id', x.order_id, 'customerId', 'c-' || n, 'currency', 'EUR', 'total', 100)
     FROM generate_series(1, $1::int) AS n, LATERAL (SELECT gen_random_uuid() AS order_id, n AS k) AS x
     RETURNING id`,
    [count, type],
  );
  return result.rows.map((r) => r.id);
}

export interface EventRow {
  id: string;
  status: string;
  attempts: number;
  locked_by: string | null;
}

export async function eventRows(db: Db, ids: readonly string[]): Promise<EventRow[]> {
  const r = await db.query<EventRow>(
    'SELECT id, status, attempts, locked_by FROM outbox_events WHERE id = ANY($1::uuid[]) ORDER BY id',
    [ids],
  );
  return r.rows;
}

export async function countRows(db: Db, sql: string, values?: unknown[]): Promise<number> {
  const r = await db.query<{ n: number }>(sql, values);
  return r.rows[0]!.n;
}

/** Polls `probe` until `done` holds; throws with the last value when `timeoutMs` runs out. */
export async function waitFor<T>(
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`condition not met within ${timeoutMs} ms (last: ${JSON.stringify(value)})`);
    await sleep(10);
  }
}

/** Counts every send per event id: the handler's side effect. */
export function countingNotifier(fail: (eventId: string) => boolean = () => false) {
  const sends = new Map<string, number>();
  const notifier: Notifier = {
    async send(n) {
      sends.set(n.eventId, (sends.get(n.eventId) ?? 0) + 1);
      if (fail(n.eventId)) throw new TransientError('provider unavailable (test)');
    },
  };
  return { notifier, sends };
}
