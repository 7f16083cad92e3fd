/**
 * `orders events list | retry`: the outbox as operators see it.
 *
 * `list` prints the newest events first as a table, or with `--json` an array of the API's event
 * objects (as in GET /orders/{id}/events) plus `orderId`.
 * `retry ID... | --dead` puts dead-lettered events back to pending, due now, with attempts reset
 * to 0, and prints `retried N`. `last_error` is kept (the record of why the event died) until the
 * next failure overwrites it. Ids that exist but are not dead are left alone (noted on stderr);
 * unknown ids are reported and make the exit code 1.
 */
import { EVENT_STATUSES, type EventStatus } from '../messaging/events.js';
import { type ListedEvent, listOutboxEvents, retryDeadEvents } from '../messaging/outbox-admin.js';
import { withOperatorDatabase } from './operator-session.js';
import { type CommandIo, processIo, UsageError } from './report.js';

export type EventsOptions =
  | { action: 'list'; status?: string; limit: number; json?: boolean }
  | { action: 'retry'; ids: string[]; dead: boolean };

const STATUSES: readonly EventStatus[] = EVENT_STATUSES;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function run(options: EventsOptions, io: CommandIo = processIo): Promise<number> {
  validate(options);
  return withOperatorDatabase(`events ${options.action}`, 'orders-events', async (db) => {
    if (options.action === 'list') {
      const events = await listOutboxEvents(db, {
        status: options.status as EventStatus | undefined,
        limit: options.limit,
      });
      io.stdout(options.json ? `${JSON.stringify(events.map(toApiEvent), null, 2)}\n` : formatTable(events));
      return 0;
    }
    const result = await retryDeadEvents(db, options.dead ? { allDead: true } : { ids: options.ids });
    io.stdout(`retried ${result.retried.length}\n`);
    for (const { id, status } of result.notDead) {
      io.stderr(`orders: event ${id} is ${status}, not dead-lettered: left unchanged\n`);
    }
    for (const id of result.notFound) io.stderr(`orders: no event with id ${id}\n`);
    return result.notFound.length > 0 ? 1 : 0;
  });
}

function validate(options: EventsOptions): void {
  if (options.action === 'list') {
    if (options.status !== undefined && !STATUSES.includes(options.status as EventStatus)) {
      throw new UsageError(
        `--status expects one of ${STATUSES.join(', ')} (got ${JSON.stringify(options.status)}).`,
      );
    }
    if (!Number.isInteger(options.limit) || options.limit < 1) {
      throw new UsageError('--limit expects a whole number of at least 1.');
    }
    return;
  }
  if (options.dead && options.ids.length > 0) {
    throw new UsageError('events retry takes either event ids or --dead, not both.');
  }
  if (!options.dead && options.ids.length === 0) {
    throw new UsageError(
      'events retry needs the ids of the events to retry, or --dead to retry every dead-lettered event.',
    );
  }
  const bad = options.ids.filter((id) => !UUID.test(id));
  if (bad.length > 0) {
    throw new UsageError(
      `event ids are UUIDs (e.g. 0192f1c6-5b7e-7cc1-9d7e-3c0f5a2b9e10); not valid: ${bad.map((id) => JSON.stringify(id)).join(', ')}`,
    );
  }
}

/** The API's event object (GET /orders/{id}/events) plus the order it belongs to. */
function toApiEvent(e: ListedEvent) {
  return {
    id: e.id,
    orderId: e.orderId,
    type: e.type,
    direction: 'outbound',
    status: e.status,
    attempts: e.attempts,
    createdAt: e.createdAt,
    processedAt: e.processedAt,
  };
}

const LAST_ERROR_WIDTH = 60;

export function formatTable(events: readonly ListedEvent[]): string {
  const header = ['ID', 'ORDER', 'TYPE', 'STATUS', 'ATTEMPTS', 'CREATED', 'PROCESSED', 'LAST ERROR'];
  const rows = events.map((e) => [
    e.id,
    e.orderId,
    e.type,
    e.status,
    String(e.attempts),
    e.createdAt,
    e.processedAt ?? '-',
    truncate(e.lastError ?? '-', LAST_ERROR_WIDTH),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const out = [line(header), ...rows.map(line)];
  if (rows.length === 0) out.push('(no events)');
  return `${out.join('\n')}\n`;
}

function truncate(text: string, width: number): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > width ? `${one.slice(0, width - 1)}…` : one;
}
