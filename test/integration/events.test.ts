/**
 * `orders events list | retry`: the command module against a test database, and (when the
 * build exists) the real binary spawned with DATABASE_URL.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type EventsOptions, run } from '../../src/commands/events.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = `${ROOT}bin/orders.js`;
const BUILT = existsSync(`${ROOT}dist/commands/events.js`);

let tdb: TestDatabase;
const savedUrl = process.env.DATABASE_URL;

beforeAll(async () => {
  tdb = await createTestDatabase();
  process.env.DATABASE_URL = tdb.url;
});

afterAll(async () => {
  if (savedUrl === undefined) delete process.env.DATABASE_URL;
  else process.env.DATABASE_URL = savedUrl;
  await tdb?.drop();
});

const ids = {
  processed: '0192f1c6-0000-7000-8000-000000000001',
  dead1: '0192f1c6-0000-7000-8000-000000000002',
  dead2: '0192f1c6-0000-7000-8000-000000000003',
  pending: '0192f1c6-0000-7000-8000-000000000004',
};
const orderOf = (id: string) => id.replace('0192f1c6', 'aaaaaaaa');

beforeEach(async () => {
  await tdb.db.query('TRUNCATE outbox_events, notifications');
  await tdb.db.query(
    `INSERT INTO outbox_events (id, aggregate_type, aggregate_id, type, payload, status, attempts, created_at, processed_at, last_error)
     VALUES ($1, 'order', $5, 'OrderCreated', '{}', 'processed', 1, '2026-01-01T00:00:01Z', '2026-01-01T00:00:02Z', NULL),
            ($2, 'order', $6, 'OrderCreated', '{}', 'dead', 10, '2026-01-01T00:00:03Z', NULL, $9),
            ($3, 'order', $7, 'OrderCreated', '{}', 'dead', 10, '2026-01-01T00:00:04Z', NULL, 'TransientError: boom'),
            ($4, 'order', $8, 'OrderCreated', '{}', 'pending', 0, '2026-01-01T00:00:05Z', NULL, NULL)`,
    [
      ids.processed,
      ids.dead1,
      ids.dead2,
      ids.pending,
      orderOf(ids.processed),
      orderOf(ids.dead1),
      orderOf(ids.dead2),
      orderOf(ids.pending),
      `TransientError: simulated notification failure ${'x'.repeat(200)}`,
    ],
  );
});

async function runEvents(options: EventsOptions) {
  let stdout = '';
  let stderr = '';
  const code = await run(options, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

async function statusOf(id: string) {
  const r = await tdb.db.query<{ status: string; attempts: number; last_error: string | null }>(
    'SELECT status, attempts, last_error FROM outbox_events WHERE id = $1',
    [id],
  );
  return r.rows[0];
}

describe('events list', () => {
  it('--json prints the API event objects plus orderId, newest first', async () => {
    const { code, stdout } = await runEvents({ action: 'list', limit: 50, json: true });
    expect(code).toBe(0);
    const events = JSON.parse(stdout) as Record<string, unknown>[];
    expect(events.map((e) => e.id)).toEqual([ids.pending, ids.dead2, ids.dead1, ids.processed]);
    expect(events[3]).toEqual({
      id: ids.processed,
      orderId: orderOf(ids.processed),
      type: 'OrderCreated',
      direction: 'outbound',
      status: 'processed',
      attempts: 1,
      createdAt: '2026-01-01T00:00:01.000Z',
      processedAt: '2026-01-01T00:00:02.000Z',
    });
  });

  it('filters by status and honours the limit', async () => {
    const dead = JSON.parse(
      (await runEvents({ action: 'list', status: 'dead', limit: 50, json: true })).stdout,
    );
    expect(dead.map((e: { id: string }) => e.id)).toEqual([ids.dead2, ids.dead1]);
    const one = JSON.parse((await runEvents({ action: 'list', limit: 1, json: true })).stdout);
    expect(one).toHaveLength(1);
  });

  it('prints a readable table with the last error truncated', async () => {
    const { code, stdout } = await runEvents({ action: 'list', limit: 50 });
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+ORDER\s+TYPE\s+STATUS\s+ATTEMPTS\s+CREATED\s+PROCESSED\s+LAST ERROR$/);
    expect(lines).toHaveLength(5);
    const deadLine = lines.find((l) => l.startsWith(ids.dead1))!;
    expect(deadLine).toContain(orderOf(ids.dead1));
    expect(deadLine).toMatch(/dead\s+10\s+2026-01-01T00:00:03.000Z\s+-\s+TransientError: simulated/);
    expect(deadLine.endsWith('…')).toBe(true);
    expect(deadLine.length).toBeLessThan(250);
  });

  it('rejects an unknown status as bad usage', async () => {
    await expect(runEvents({ action: 'list', status: 'lost', limit: 5 })).rejects.toThrow(
      /--status expects one of/,
    );
  });
});

describe('events retry', () => {
  it('--dead puts every dead-lettered event back to pending with attempts reset and last_error kept', async () => {
    const { code, stdout } = await runEvents({ action: 'retry', ids: [], dead: true });
    expect(code).toBe(0);
    expect(stdout).toBe('retried 2\n');
    expect(await statusOf(ids.dead1)).toMatchObject({ status: 'pending', attempts: 0 });
    expect((await statusOf(ids.dead2))?.last_error).toBe('TransientError: boom');
    expect(await statusOf(ids.processed)).toMatchObject({ status: 'processed', attempts: 1 });
    expect((await runEvents({ action: 'retry', ids: [], dead: true })).stdout).toBe('retried 0\n');
  });

  it('retries the given ids; ids not dead are left alone and named', async () => {
    const { code, stdout, stderr } = await runEvents({
      action: 'retry',
      ids: [ids.dead1, ids.dead1.toUpperCase(), ids.processed],
      dead: false,
    });
    expect(code).toBe(0);
    expect(stdout).toBe('retried 1\n');
    expect(stderr).toContain(`event ${ids.processed} is processed, not dead-lettered`);
    expect(await statusOf(ids.dead1)).toMatchObject({ status: 'pending', attempts: 0 });
    expect(await statusOf(ids.dead2)).toMatchObject({ status: 'dead' });
  });

  it('an unknown id fails with exit code 1 and says so', async () => {
    const unknown = '0192f1c6-0000-7000-8000-0000000000ff';
    const { code, stdout, stderr } = await runEvents({
      action: 'retry',
      ids: [unknown, ids.dead2],
      dead: false,
    });
    expect(code).toBe(1);
    expect(stdout).toBe('retried 1\n');
    expect(stderr).toContain(`no event with id ${unknown}`);
  });

  it.each([
    [{ action: 'retry', ids: [], dead: false }, /needs the ids of the events to retry, or --dead/],
    [{ action: 'retry', ids: [ids.dead1], dead: true }, /either event ids or --dead, not both/],
    [{ action: 'retry', ids: ['nope', ids.dead1, '123'], dead: false }, /not valid: "nope", "123"/],
  ] as const)('bad usage %# is a UsageError before touching the database', async (options, message) => {
    const error = await runEvents(options as unknown as EventsOptions).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'UsageError' });
    expect((error as Error).message).toMatch(message);
    expect(await statusOf(ids.dead1)).toMatchObject({ status: 'dead' });
  });

  it('needs DATABASE_URL', async () => {
    const url = process.env.DATABASE_URL;
    delete process.env.DATABASE_URL;
    try {
      const error = await runEvents({ action: 'list', limit: 5 }).catch((e: unknown) => e);
      expect(error).toMatchObject({ name: 'UsageError' });
      expect((error as Error).message).toMatch(
        /DATABASE_URL is not set: `orders events list` needs a PostgreSQL server/,
      );
    } finally {
      process.env.DATABASE_URL = url;
    }
  });
});

describe.skipIf(!BUILT)(
  `the orders binary${BUILT ? '' : ' (skipped: dist/ is missing, run `npm run build` first)'}`,
  () => {
    // Asynchronous on purpose: with the embedded database the server lives in this very process,
    // so blocking it (spawnSync) would leave the child waiting for a database that cannot answer.
    const cli = (args: string[], env: Record<string, string | undefined> = {}) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(process.execPath, [BIN, ...args], {
          env: { ...process.env, DATABASE_URL: tdb.url, LOG_LEVEL: 'warn', ...env },
          timeout: 20_000,
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        child.on('error', reject);
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });

    it('events list --json, then retry --dead', async () => {
      const listed = await cli(['events', 'list', '--json', '--status', 'dead']);
      expect(listed.code).toBe(0);
      expect(JSON.parse(listed.stdout).map((e: { id: string }) => e.id)).toEqual([ids.dead2, ids.dead1]);
      const retried = await cli(['events', 'retry', '--dead']);
      expect(retried).toMatchObject({ code: 0, stdout: 'retried 2\n' });
      const after = await cli(['events', 'list', '--json', '--status', 'dead']);
      expect(JSON.parse(after.stdout)).toEqual([]);
    });

    it('exit code 2 for bad usage, naming what is wrong', async () => {
      const [none, both, bad, noDb] = await Promise.all([
        cli(['events', 'retry']),
        cli(['events', 'retry', '--dead', ids.dead1]),
        cli(['events', 'retry', 'not-a-uuid']),
        cli(['events', 'list'], { DATABASE_URL: undefined }),
      ]);
      expect(none.code).toBe(2);
      expect(none.stderr).toMatch(/--dead/);
      expect(both.code).toBe(2);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('"not-a-uuid"');
      expect(noDb.code).toBe(2);
      expect(noDb.stderr).toMatch(/DATABASE_URL is not set/);
    });
  },
);
