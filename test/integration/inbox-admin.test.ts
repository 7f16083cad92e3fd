/**
 * The inbox as operators see it: consumed events beside published ones in
 * GET /orders/{id}/events (`direction`), `orders inbox list | retry`, and housekeeping.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InboxOptions, run } from '../../src/commands/inbox.js';
import { receive, retry } from '../../src/messaging/inbox.js';
import type { InboundMessage } from '../../src/messaging/inbox-message.js';
import { createOrdersService } from '../../src/orders/service.js';
import { createHousekeeper } from '../../src/worker/housekeeping.js';
import { createTestDatabase, type TestDatabase, testLogger } from '../helpers/db.js';
import { createOrder, event } from '../helpers/inbox.js';

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

const deliver = (message: InboundMessage) => receive(tdb.db, message);

describe('what operators see', () => {
  it('GET /orders/{id}/events lists what was consumed (inbound) beside what was published, in causal order', async () => {
    const o = await createOrder(tdb.db);
    const reserved = event('StockReserved', o.id);
    await deliver(reserved);
    const captured = await deliver(event('PaymentCaptured', o.id));
    await deliver(event('PaymentCaptured', o.id, { data: { amount: 7 } }));
    const service = createOrdersService({ db: tdb.db, idempotencyTtlHours: 1 });
    const events = await service.listEvents(o.id, { customerId: null });
    expect(events.map((e) => [e.type, e.direction, e.status])).toEqual([
      ['OrderCreated', 'outbound', 'pending'],
      ['StockReserved', 'inbound', 'processed'],
      ['PaymentCaptured', 'inbound', 'processed'],
      ['OrderConfirmed', 'outbound', 'pending'],
      ['PaymentCaptured', 'inbound', 'dead'],
    ]);
    expect(events[1]).toMatchObject({ id: JSON.parse(reserved.body as string).id, attempts: 1 });
    expect(events[2]?.id).toBe(captured.identity.id);
    expect(events[4]?.processedAt).toBeNull();
    // Another customer sees none of it.
    await expect(service.listEvents(o.id, { customerId: 'someone-else' })).rejects.toThrow(/No order/);
  });

  it('orders inbox list --json has the contract shape; retry --dead applies and reports', async () => {
    await tdb.db.query('TRUNCATE inbox_messages');
    const o = await createOrder(tdb.db);
    const ok = await deliver(event('StockReserved', o.id));
    // Malformed, so that retrying it stops at parsing (on PGlite the command's pool shares the
    // test pool's one session, and its prepared statements).
    const missing = randomUUID();
    const dead = await deliver(event('PaymentFailed', missing, { envelope: { specversion: '0.3' } }));
    const io = { out: '', err: '' };
    const cli = (options: InboxOptions) =>
      run(options, { stdout: (t) => (io.out += t), stderr: (t) => (io.err += t) });

    expect(await cli({ action: 'list', limit: 10, json: true })).toBe(0);
    const listed = JSON.parse(io.out) as Record<string, unknown>[];
    expect(listed).toHaveLength(2);
    expect(listed[0]).toEqual({
      id: dead.identity.id,
      source: 'payments',
      type: 'PaymentFailed',
      orderId: missing,
      status: 'dead',
      reason: expect.stringMatching(/^malformed_envelope: specversion/),
      receivedAt: expect.stringMatching(/Z$/),
      processedAt: null,
    });
    expect(listed[1]).toMatchObject({ id: ok.identity.id, status: 'processed', reason: null });

    io.out = '';
    expect(await cli({ action: 'list', status: 'dead', limit: 10 })).toBe(0);
    const lines = io.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+SOURCE\s+TYPE\s+ORDER\s+STATUS\s+RECEIVED\s+PROCESSED\s+REASON$/);
    expect(lines).toHaveLength(2);

    io.out = '';
    expect(await cli({ action: 'retry', ids: [], dead: true })).toBe(1);
    expect(io.out).toBe('applied 0\n');
    expect(io.err).toMatch(/is still dead: malformed_envelope/);
    await expect(cli({ action: 'list', status: 'lost', limit: 5 })).rejects.toThrow(
      /--status expects one of processed, dead/,
    );
    await expect(cli({ action: 'retry', ids: ['x'], dead: true })).rejects.toThrow(
      /either event ids or --dead/,
    );
  });

  it('housekeeping purges processed inbox rows past the retention, never dead ones', async () => {
    await tdb.db.query('TRUNCATE inbox_messages');
    const o = await createOrder(tdb.db);
    await deliver(event('StockReserved', o.id));
    await deliver(event('StockReserved', randomUUID()));
    await tdb.db.query(
      `UPDATE inbox_messages SET processed_at = now() - interval '8 days', received_at = now() - interval '8 days'`,
    );
    const housekeeper = createHousekeeper({
      db: tdb.db,
      logger: testLogger,
      retentionMs: 7 * 86_400_000,
      batchSize: 10,
      intervalMs: 0,
    });
    expect((await housekeeper.runOnce()).inbox).toBe(1);
    const r = await tdb.db.query<{ status: string }>('SELECT status FROM inbox_messages');
    expect(r.rows).toEqual([{ status: 'dead' }]);
  });
});

describe('orders inbox retry over many dead entries', () => {
  it('pages through more than one page, handling each entry once (the cursor keeps microseconds)', async () => {
    for (let i = 0; i < 230; i++) {
      expect((await receive(tdb.db, event('StockReserved', randomUUID()))).outcome).toBe('dead');
    }
    const result = await retry(tdb.db, 'dead');
    const unique = new Set(result.stillDead.map((d) => `${d.source}/${d.id}`));
    expect(result.stillDead.length).toBe(unique.size);
    expect(unique.size).toBeGreaterThanOrEqual(230);
  });
});
