/**
 * drain: N pending OrderCreated events inserted in one statement into a database of their own,
 * then the time until a server with the in-process worker has processed them all.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  EventStatus,
  ORDER_CREATED,
  type OrderCreatedPayload,
  PUBLISHED_EVENTS,
} from '../../../src/messaging/events.js';
import { orderTotal } from '../../../src/orders/schemas.js';
import { type CpuShares, cpuDelta, rssMiB, sampleCpu } from '../cpu.js';
import { withClient } from '../database.js';
import type { BenchOptions } from '../options.js';
import { benchOrder } from '../orders.js';
import { round } from '../round.js';
import { type OurServer, startOurs, WorkerUnavailableError } from '../servers.js';

export interface DrainRun extends CpuShares {
  target: 'ours';
  scenario: 'drain';
  repeat: number;
  events: number;
  processed: number;
  dead: number;
  complete: boolean;
  seconds: number;
  eventsPerSec: number;
  rssMiB: number | null;
  note: string | undefined;
}

export interface SkippedRun {
  target: string;
  scenario: string;
  repeat: number;
  skipped: string;
}

/**
 * The OrderCreated payload every backlog event is stamped from: the bench's order as the API
 * answers it, checked against the event contract before anything is inserted. Its id, customerId
 * and createdAt only stand in for the values INSERT_BACKLOG_SQL gives each row.
 */
export function backlogPayload(): OrderCreatedPayload {
  const order = benchOrder(0);
  const createdAt = new Date().toISOString();
  const payload: OrderCreatedPayload = {
    id: randomUUID(),
    customerId: order.customerId,
    status: 'pending',
    currency: order.currency,
    items: order.items,
    total: orderTotal(order.items),
    createdAt,
    version: 1,
    updatedAt: createdAt,
    stock: 'pending',
    payment: 'pending',
    cancellationReason: null,
  };
  return PUBLISHED_EVENTS[ORDER_CREATED].parse(payload);
}

/**
 * $1 orders, their items and their events from the payload $2, with the event type $3. Each row
 * gets its own id, creation time and customer (`c-<n % 1000>`, as benchOrder(n) varies it), so
 * that rows are not all identical; the rest of the payload is the template's.
 */
const INSERT_BACKLOG_SQL = `
WITH template AS (
  SELECT $2::jsonb AS payload
), o AS (
  INSERT INTO orders (id, customer_id, status, currency, total, created_at)
  SELECT gen_random_uuid(), 'c-' || (g % 1000), t.payload->>'status', t.payload->>'currency',
         (t.payload->>'total')::bigint, now()
  FROM generate_series(1, $1::int) AS g, template t
  RETURNING id, customer_id, created_at
), i AS (
  INSERT INTO order_items (order_id, line_no, sku, quantity, unit_price)
  SELECT o.id, (l.n - 1)::smallint, l.item->>'sku', (l.item->>'quantity')::int, (l.item->>'unitPrice')::bigint
  FROM o, template t, jsonb_array_elements(t.payload->'items') WITH ORDINALITY AS l (item, n)
)
INSERT INTO outbox_events (id, aggregate_type, aggregate_id, type, payload, created_at, available_at)
SELECT gen_random_uuid(), 'order', o.id, $3,
       t.payload || jsonb_build_object(
         'id', o.id, 'customerId', o.customer_id,
         'createdAt', to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
       o.created_at, o.created_at
FROM o, template t`;

const BACKLOG_LEFT_SQL = `
SELECT count(*) FILTER (WHERE status <> $1)::int AS remaining,
       count(*) FILTER (WHERE status = $2)::int AS dead
FROM outbox_events`;

/** Starts ours with the worker on the emptied drain database, inserts the backlog, times its drain. */
export async function runDrain(
  options: BenchOptions,
  drainDbUrl: string,
  repeat: number,
  payload: OrderCreatedPayload,
): Promise<DrainRun | SkippedRun> {
  await withClient(drainDbUrl, (c) =>
    c.query('TRUNCATE outbox_events, notifications, order_items, orders, idempotency_keys'),
  );
  let server: OurServer;
  try {
    server = await startOurs(options, drainDbUrl, { worker: true });
  } catch (error) {
    if (error instanceof WorkerUnavailableError) {
      return { target: 'ours', scenario: 'drain', repeat, skipped: 'worker unavailable' };
    }
    throw error;
  }
  const { proc } = server;
  try {
    return await withClient(drainDbUrl, async (c) => {
      await c.query(INSERT_BACKLOG_SQL, [options.drainEvents, JSON.stringify(payload), ORDER_CREATED]);
      const before = sampleCpu(proc.pid);
      const started = process.hrtime.bigint();
      const deadline = Date.now() + options.drainTimeout * 1000;
      let remaining = options.drainEvents;
      let dead = 0;
      while (Date.now() < deadline && proc.running()) {
        const { rows } = await c.query<{ remaining: number; dead: number }>(BACKLOG_LEFT_SQL, [
          EventStatus.enum.processed,
          EventStatus.enum.dead,
        ]);
        remaining = rows[0].remaining;
        dead = rows[0].dead;
        if (remaining === 0) break;
        await sleep(250);
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const after = sampleCpu(proc.pid);
      const processed = options.drainEvents - remaining;
      return {
        target: 'ours',
        scenario: 'drain',
        repeat,
        events: options.drainEvents,
        processed,
        dead,
        complete: remaining === 0,
        seconds: round(seconds, 2),
        eventsPerSec: round(processed / seconds, 1),
        rssMiB: rssMiB(proc.pid),
        ...cpuDelta(before, after, processed),
        note: remaining === 0 ? undefined : `not finished: ${remaining} left after ${round(seconds, 1)} s`,
      };
    });
  } finally {
    await proc.stop();
  }
}
