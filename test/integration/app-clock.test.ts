/**
 * One clock for what the database compares: an API process whose clock runs ahead of the
 * database's neither delays the OrderCreated event (available_at) nor stretches the
 * Idempotency-Key's lifetime (expires_at). The order's createdAt stays the process's: it is part
 * of the stored 201 response.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { claimEvents } from '../../src/messaging/outbox.js';
import { createOrdersService } from '../../src/orders/service.js';
import { createTestDatabase, serverUrl, type TestDatabase } from '../helpers/db.js';

const AHEAD_MS = 3_600_000; // the API's clock is an hour fast
const TTL_HOURS = 24;

let tdb: TestDatabase;

beforeAll(async () => {
  tdb = await createTestDatabase();
});

afterAll(async () => {
  await tdb?.drop();
});

afterEach(() => {
  vi.useRealTimers();
});

/** PGlite runs inside this process: the faked clock would be the database's clock too. */
const SEPARATE_CLOCK = serverUrl()
  ? 'real server'
  : 'needs a PostgreSQL server (TEST_DATABASE_URL): the embedded database shares this process clock';

describe(`an API clock ahead of the database (${SEPARATE_CLOCK})`, () => {
  it.skipIf(!serverUrl())(
    'the event is claimable at once and the key expires by the database clock',
    async () => {
      const orders = createOrdersService({ db: tdb.db, idempotencyTtlHours: TTL_HOURS });
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(Date.now() + AHEAD_MS);
      const created = await orders.create({
        input: { customerId: 'c-clock', currency: 'EUR', items: [{ sku: 'A', quantity: 1, unitPrice: 100 }] },
        customerId: 'c-clock',
        idempotency: { key: 'clock-key', fingerprint: 'f' },
      });
      vi.useRealTimers();
      if (created.kind !== 'created') throw new Error('expected a new order');

      // The order's own timestamp is the process's (an hour ahead); that is only reported.
      expect(Date.parse(created.order.createdAt) - Date.now()).toBeGreaterThan(AHEAD_MS - 60_000);

      // A poll (no wake-up) claims it at once.
      const { events } = await claimEvents(tdb.db, { workerId: 'clock-test', limit: 10, leaseMs: 8_000 });
      expect(events.map((e) => e.id)).toEqual([created.eventId]);

      const key = await tdb.db.query<{ off_by_seconds: number }>(
        `SELECT abs(extract(epoch FROM expires_at - (now() + make_interval(hours => $2))))::float8 AS off_by_seconds
       FROM idempotency_keys WHERE key = $1`,
        ['clock-key', TTL_HOURS],
      );
      expect(key.rows[0]!.off_by_seconds).toBeLessThan(60);
    },
  );
});
