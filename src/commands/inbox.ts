/**
 * `orders inbox list | retry`: the consumed (inbound) events as operators see them.
 *
 * `list` prints the newest first as a table, or with `--json` an array of
 * `{ id, source, type, orderId, status, reason, receivedAt, processedAt }`.
 * `retry ID... | --dead` applies dead entries again from their stored message (every dead entry
 * with that id, whatever its source), each in a transaction of its own as if it had just
 * arrived, and prints `applied N`. One that fails again stays dead with its new reason (on
 * stderr, exit 1); ids with no dead entry are noted on stderr and make the exit code 1.
 */
import { INBOX_STATUSES, type InboxStatus } from '../messaging/events.js';
import { retry } from '../messaging/inbox.js';
import { type ListedInboxMessage, listInboxMessages } from '../messaging/inbox-admin.js';
import { withOperatorDatabase } from './operator-session.js';
import { type CommandIo, processIo, UsageError } from './report.js';

export type InboxOptions =
  | { action: 'list'; status?: string; limit: number; json?: boolean }
  | { action: 'retry'; ids: string[]; dead: boolean };

export async function run(options: InboxOptions, io: CommandIo = processIo): Promise<number> {
  validate(options);
  return withOperatorDatabase(`inbox ${options.action}`, 'orders-inbox', async (db) => {
    if (options.action === 'list') {
      const messages = await listInboxMessages(db, {
        status: options.status as InboxStatus | undefined,
        limit: options.limit,
      });
      io.stdout(options.json ? `${JSON.stringify(messages, null, 2)}\n` : formatTable(messages));
      return 0;
    }
    const result = await retry(db, options.dead ? 'dead' : options.ids);
    io.stdout(`applied ${result.applied}\n`);
    for (const { source, id, reason } of result.stillDead) {
      io.stderr(`orders: inbound event ${id} (source ${source}) is still dead: ${reason}\n`);
    }
    for (const id of result.notDead) io.stderr(`orders: no dead inbound event with id ${id}\n`);
    return result.stillDead.length > 0 || result.notDead.length > 0 ? 1 : 0;
  });
}

function validate(options: InboxOptions): void {
  if (options.action === 'list') {
    if (options.status !== undefined && !INBOX_STATUSES.includes(options.status as InboxStatus)) {
      throw new UsageError(
        `--status expects one of ${INBOX_STATUSES.join(', ')} (got ${JSON.stringify(options.status)}).`,
      );
    }
    if (!Number.isInteger(options.limit) || options.limit < 1) {
      throw new UsageError('--limit expects a whole number of at least 1.');
    }
    return;
  }
  if (options.dead && options.ids.length > 0) {
    throw new UsageError('inbox retry takes either event ids or --dead, not both.');
  }
  if (!options.dead && options.ids.length === 0) {
    throw new UsageError(
      'inbox retry needs the ids of the inbound events to apply again, or --dead for every dead one.',
    );
  }
  const bad = options.ids.filter((id) => id.length === 0 || id.length > 200);
  if (bad.length > 0) throw new UsageError('inbound event ids are 1 to 200 characters (the CloudEvents id).');
}

const REASON_WIDTH = 60;

export function formatTable(messages: readonly ListedInboxMessage[]): string {
  const header = ['ID', 'SOURCE', 'TYPE', 'ORDER', 'STATUS', 'RECEIVED', 'PROCESSED', 'REASON'];
  const rows = messages.map((m) =>
    [
      m.id,
      m.source,
      m.type,
      m.orderId ?? '-',
      m.status,
      m.receivedAt,
      m.processedAt ?? '-',
      truncate(m.reason ?? '-', REASON_WIDTH),
    ].map(printable),
  );
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const out = [line(header), ...rows.map(line)];
  if (rows.length === 0) out.push('(no inbound events)');
  return `${out.join('\n')}\n`;
}

/** Ids, sources and types come from partners: no control characters reach the terminal. */
function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

function truncate(text: string, width: number): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > width ? `${one.slice(0, width - 1)}…` : one;
}
