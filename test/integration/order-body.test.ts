/**
 * GET /orders/{id} sends the body PostgreSQL builds (GET_ORDER_BODY_SQL). It must be the very
 * bytes Node would have sent for the same order, JSON.stringify(toOrder(row)) of GET_ORDER_SQL's
 * row: the same keys in the same order, the same escaping of free text, the same numbers, and
 * times in milliseconds, UTC, truncated as a Date truncates them.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { findOrder, findOrderRepresentation } from '../../src/orders/repository.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let tdb: TestDatabase;

beforeAll(async () => {
  tdb = await createTestDatabase();
});

afterAll(async () => {
  await tdb?.drop();
});

beforeEach(async () => {
  await tdb.db.query('TRUNCATE orders CASCADE');
});

const REASONS = ['requested', 'stock_rejected', 'payment_failed'];

/** Free text as hostile as the columns allow: quotes, backslashes, controls, non-ASCII. */
const TEXTS = [
  'plain',
  'a"quote',
  'back\\slash',
  'tab\tnew\nline\rcr',
  'ctrl\u0001\u0008\u000c\u001f\u007f',
  'é ü ß 漢字 🙂',
  'line\u2028para\u2029sep',
  "</script>&<>'",
  ' leading and trailing ',
];

let counter = 0;
function uuid(): string {
  counter++;
  return `00000000-0000-4000-8000-${String(counter).padStart(12, '0')}`;
}

async function insertOrder(options: {
  customerId: string;
  items: { sku: string; quantity: number; unitPrice: number }[];
  total: number;
  createdAt: string;
}): Promise<string> {
  const id = uuid();
  await tdb.db.query(
    `INSERT INTO orders (id, customer_id, currency, total, created_at) VALUES ($1, $2, 'EUR', $3, $4)`,
    [id, options.customerId, options.total, options.createdAt],
  );
  for (const [n, item] of options.items.entries()) {
    await tdb.db.query(
      'INSERT INTO order_items (order_id, line_no, sku, quantity, unit_price) VALUES ($1, $2, $3, $4, $5)',
      [id, n, item.sku, item.quantity, item.unitPrice],
    );
  }
  return id;
}

async function expectSameBody(id: string, customerId: string | null = null) {
  const order = await findOrder(tdb.db, id, customerId);
  const representation = await findOrderRepresentation(tdb.db, id, customerId);
  expect(order).toBeDefined();
  expect(representation?.body).toBe(JSON.stringify(order));
  expect(representation?.version).toBe(order?.version);
}

describe('the order body PostgreSQL builds', () => {
  it('is byte for byte the body Node would send, for hostile text in every free-text column (customer id, SKU)', async () => {
    for (const [n, text] of TEXTS.entries()) {
      const id = await insertOrder({
        customerId: text,
        items: [
          { sku: text, quantity: 1, unitPrice: 0 },
          { sku: `${text}-2`, quantity: 10_000, unitPrice: 1_000_000_000_000 },
        ],
        total: n === 0 ? Number.MAX_SAFE_INTEGER : n,
        createdAt: `2026-12-06T05:10:41.${String(n * 111).padStart(3, '0')}Z`,
      });
      const reason = REASONS[n % REASONS.length];
      await tdb.db.query(
        `UPDATE orders SET status = 'cancelled', cancellation_reason = $2, version = version + 1,
                updated_at = now() WHERE id = $1`,
        [id, reason],
      );
      await expectSameBody(id);
      await expectSameBody(id, text);
    }
  });

  it('keeps the items in line order, an order without items has [], and an unchanged order uses createdAt', async () => {
    const many = await insertOrder({
      customerId: 'c-many',
      items: Array.from({ length: 12 }, (_, i) => ({
        sku: `SKU-${11 - i}`,
        quantity: i + 1,
        unitPrice: i * 7,
      })),
      total: 42,
      createdAt: '1999-01-02T03:04:05.000Z',
    });
    const none = await insertOrder({
      customerId: 'c-none',
      items: [],
      total: 0,
      createdAt: '2030-06-07T08:09:10.999Z',
    });
    await expectSameBody(many);
    await expectSameBody(none);
    const { body } = (await findOrderRepresentation(tdb.db, none, null))!;
    expect(JSON.parse(body)).toMatchObject({ items: [], updatedAt: '2030-06-07T08:09:10.999Z' });
  });

  it('truncates microseconds to milliseconds as a Date does, for every millisecond boundary case', async () => {
    const id = await insertOrder({
      customerId: 'c-us',
      items: [{ sku: 'A', quantity: 1, unitPrice: 1 }],
      total: 1,
      createdAt: '2026-01-01T00:00:00.000Z',
    });
    for (const micros of ['000000', '000999', '001000', '123456', '579000', '999999', '100001']) {
      await tdb.db.query(`UPDATE orders SET updated_at = $2::timestamptz WHERE id = $1`, [
        id,
        `2026-02-03 04:05:06.${micros}+00`,
      ]);
      await expectSameBody(id);
    }
  });

  it("is absent for another customer's order, as findOrder is", async () => {
    const id = await insertOrder({
      customerId: 'c-owner',
      items: [{ sku: 'A', quantity: 1, unitPrice: 1 }],
      total: 1,
      createdAt: '2026-01-01T00:00:00.000Z',
    });
    expect(await findOrderRepresentation(tdb.db, id, 'c-other')).toBeUndefined();
    expect(await findOrder(tdb.db, id, 'c-other')).toBeUndefined();
  });
});
