/**
 * The columns' rules live in domains (migration 1764000000005): the same rules under the same
 * constraint names as the table CHECK constraints they replaced. Every rule is held here at its
 * edges, through parameters as the service sends them, on real PostgreSQL and on PGlite.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { migrate } from '../../src/platform/migrations.js';
import { createTestDatabase, type TestDatabase, testLogger } from '../helpers/db.js';

let tdb: TestDatabase;

beforeAll(async () => {
  tdb = await createTestDatabase();
});

afterAll(async () => {
  await tdb?.drop();
});

const ORDER_ID = '00000000-0000-4000-8000-000000000001';
const EVENT_ID = '00000000-0000-4000-8000-000000000002';

beforeEach(async () => {
  await tdb.db.query('TRUNCATE orders, outbox_events, idempotency_keys CASCADE');
  await tdb.db.query(`INSERT INTO orders (id, customer_id, currency, total) VALUES ($1, 'c', 'EUR', 10)`, [
    ORDER_ID,
  ]);
  await tdb.db.query(
    `INSERT INTO order_items (order_id, line_no, sku, quantity, unit_price) VALUES ($1, 0, 's', 1, 10)`,
    [ORDER_ID],
  );
  await tdb.db.query(
    `INSERT INTO outbox_events (id, aggregate_type, aggregate_id, type, payload)
     VALUES ($1, 'order', $2, 'OrderCreated', '{}')`,
    [EVENT_ID, ORDER_ID],
  );
});

const ROLL_BACK = new Error('roll back');

/** Runs `sql` with `values` in a transaction it rolls back; the error's SQLSTATE and constraint, if any. */
async function attempt(sql: string, values: unknown[]): Promise<{ code?: string; constraint?: string }> {
  try {
    await tdb.db.transaction(async (tx) => {
      await tx.query(sql, values);
      throw ROLL_BACK;
    });
  } catch (error) {
    if (error === ROLL_BACK) return {};
    const { code, constraint } = error as { code?: string; constraint?: string };
    return { code, constraint };
  }
  throw new Error('unreachable: the transaction always throws');
}

const SET_ORDER = (column: string) => `UPDATE orders SET ${column} = $2 WHERE id = $1`;
const SET_ITEM = (column: string) => `UPDATE order_items SET ${column} = $2 WHERE order_id = $1`;
const INSERT_ITEM = `INSERT INTO order_items (order_id, line_no, sku, quantity, unit_price)
  VALUES ($1, $2, $3, $4, $5)`;

/** Each rule: the statement, values it accepts at the edges, values it refuses, and its name. */
const RULES: { name: string; sql: string; accepted: unknown[]; refused: unknown[] }[] = [
  {
    name: 'orders_customer_id_check',
    sql: SET_ORDER('customer_id'),
    accepted: ['x', 'x'.repeat(64)],
    refused: ['', 'x'.repeat(65)],
  },
  {
    name: 'orders_status_lifecycle_check',
    sql: SET_ORDER('status'),
    accepted: ['pending', 'confirmed', 'cancelled', 'shipped'],
    refused: ['lost', 'PENDING'],
  },
  { name: 'orders_currency_check', sql: SET_ORDER('currency'), accepted: ['USD'], refused: ['eur', 'E1R'] },
  {
    name: 'orders_total_check',
    sql: SET_ORDER('total'),
    accepted: [0, '9007199254740991'],
    refused: [-1, '9007199254740992'],
  },
  { name: 'orders_version_check', sql: SET_ORDER('version'), accepted: [1, 2], refused: [0, -1] },
  {
    name: 'orders_stock_check',
    sql: SET_ORDER('stock'),
    accepted: ['pending', 'reserved', 'rejected'],
    refused: ['lost'],
  },
  {
    name: 'orders_payment_check',
    sql: SET_ORDER('payment'),
    accepted: ['pending', 'captured', 'failed'],
    refused: ['refunded'],
  },
  {
    name: 'orders_cancellation_reason_check',
    sql: SET_ORDER('cancellation_reason'),
    accepted: [null, 'requested', 'stock_rejected', 'payment_failed'],
    refused: ['bored'],
  },
  { name: 'order_items_line_no_check', sql: SET_ITEM('line_no'), accepted: [0, 99], refused: [-1, 100] },
  {
    name: 'order_items_sku_check',
    sql: SET_ITEM('sku'),
    accepted: ['s', 's'.repeat(64)],
    refused: ['', 's'.repeat(65)],
  },
  {
    name: 'order_items_quantity_check',
    sql: SET_ITEM('quantity'),
    accepted: [1, 10_000],
    refused: [0, 10_001],
  },
  {
    name: 'order_items_unit_price_check',
    sql: SET_ITEM('unit_price'),
    accepted: [0, '1000000000000'],
    refused: [-1, '1000000000001'],
  },
  {
    name: 'outbox_events_attempts_check',
    sql: 'UPDATE outbox_events SET attempts = $2 WHERE id = $1',
    accepted: [0, 5],
    refused: [-1],
  },
  {
    name: 'outbox_events_status_check',
    sql: 'UPDATE outbox_events SET status = $2 WHERE id = $1',
    accepted: ['pending', 'processing', 'processed', 'dead'],
    refused: ['done'],
  },
];

describe('the columns keep their rules, under the same names', () => {
  for (const rule of RULES) {
    it(`${rule.name}: accepts ${rule.accepted.length} edge values, refuses ${rule.refused.length}`, async () => {
      const id = rule.sql.includes('outbox_events') ? EVENT_ID : ORDER_ID;
      for (const value of rule.accepted) {
        expect(await attempt(rule.sql, [id, value]), `${rule.name} accepts ${String(value)}`).toEqual({});
      }
      for (const value of rule.refused) {
        expect(await attempt(rule.sql, [id, value]), `${rule.name} refuses ${String(value)}`).toEqual({
          code: '23514',
          constraint: rule.name,
        });
      }
    });
  }

  it('an INSERT is held to them as an UPDATE is: a new item, and a new idempotency key', async () => {
    expect(await attempt(INSERT_ITEM, [ORDER_ID, 1, 's', 1, 1])).toEqual({});
    expect(await attempt(INSERT_ITEM, [ORDER_ID, 1, 's', 0, 1])).toEqual({
      code: '23514',
      constraint: 'order_items_quantity_check',
    });
    const insertKey = `INSERT INTO idempotency_keys (key, fingerprint, status_code, response_headers, response_body, expires_at)
      VALUES ($1, 'f', 201, '{}', '', now())`;
    expect(await attempt(insertKey, ['k'.repeat(255)])).toEqual({});
    for (const key of ['', 'k'.repeat(256)]) {
      expect(await attempt(insertKey, [key])).toEqual({
        code: '23514',
        constraint: 'idempotency_keys_key_check',
      });
    }
  });

  it('a value computed in SQL is held to them too (attempts - 1, a concatenated id)', async () => {
    expect(
      await attempt('UPDATE outbox_events SET attempts = attempts - 1 WHERE id = $1', [EVENT_ID]),
    ).toEqual({
      code: '23514',
      constraint: 'outbox_events_attempts_check',
    });
    expect(
      await attempt(`UPDATE orders SET customer_id = customer_id || repeat('x', $2::int) WHERE id = $1`, [
        ORDER_ID,
        64,
      ]),
    ).toEqual({ code: '23514', constraint: 'orders_customer_id_check' });
  });
});

/**
 * The CHECK constraints in the schema: those of tables, those of domains, and those of either
 * added NOT VALID (not re-checked on the rows there: the migration moves a rule without a scan).
 */
async function checkConstraints(): Promise<{ tables: string[]; domains: string[]; notValidated: string[] }> {
  const result = await tdb.db.query<{ name: string; on_table: boolean; validated: boolean }>(`
    SELECT conname AS name, conrelid <> 0 AS on_table, convalidated AS validated FROM pg_constraint
    WHERE contype = 'c' AND (conrelid <> 0 OR contypid <> 0)
      AND connamespace = current_schema()::regnamespace
    ORDER BY 1`);
  return {
    tables: result.rows.filter((r) => r.on_table).map((r) => r.name),
    domains: result.rows.filter((r) => !r.on_table).map((r) => r.name),
    notValidated: result.rows.filter((r) => !r.validated).map((r) => r.name),
  };
}

const ALL_RULES = [
  ...RULES.map((r) => r.name),
  'idempotency_keys_key_check',
  'inbox_messages_status_check',
].sort();
const TABLE_RULES = ['inbox_messages_status_check', 'outbox_events_status_check'];

describe('where the rules live', () => {
  it('the order tables and idempotency keys hold no CHECK constraints of their own; the status words of the outbox and inbox do', async () => {
    const domains = ALL_RULES.filter((n) => !TABLE_RULES.includes(n));
    // The domains' checks were added NOT VALID: the rows had passed the same rule as table CHECKs.
    expect(await checkConstraints()).toEqual({ tables: TABLE_RULES, domains, notValidated: domains });
  });

  it('values travel as their base types, so readers parse them as before', async () => {
    const result = await tdb.db.query(
      `SELECT o.customer_id, o.status, o.currency, o.total, o.version, i.line_no, i.quantity, i.unit_price
       FROM orders o JOIN order_items i ON i.order_id = o.id`,
    );
    // text, text, bpchar, int8, int4, int2, int4, int8
    expect(result.fields.map((f) => f.dataTypeID)).toEqual([25, 25, 1042, 20, 23, 21, 23, 20]);
    expect(result.rows[0]).toEqual({
      customer_id: 'c',
      status: 'pending',
      currency: 'EUR',
      total: 10,
      version: 1,
      line_no: 0,
      quantity: 1,
      unit_price: 10,
    });
  });

  it('down puts every rule back on its table under its name, and up moves them into domains again', async () => {
    await migrate({ databaseUrl: tdb.url, direction: 'down', count: 1, logger: testLogger });
    expect(await checkConstraints()).toEqual({
      tables: ALL_RULES,
      domains: [],
      notValidated: ALL_RULES.filter((n) => !TABLE_RULES.includes(n)),
    });
    expect(await attempt(SET_ORDER('total'), [ORDER_ID, -1])).toEqual({
      code: '23514',
      constraint: 'orders_total_check',
    });

    await migrate({ databaseUrl: tdb.url, direction: 'up', logger: testLogger });
    expect((await checkConstraints()).tables).toEqual(TABLE_RULES);
    expect(await attempt(SET_ORDER('total'), [ORDER_ID, -1])).toEqual({
      code: '23514',
      constraint: 'orders_total_check',
    });
  });
});
