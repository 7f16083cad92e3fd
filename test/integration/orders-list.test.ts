/**
 * GET /orders: newest first, keyset pagination with an opaque cursor, filters, limits, the Link
 * header, and ownership (with real JWTs); paging through while orders keep arriving never repeats
 * or skips one that existed when the first page was read. Also who may cancel and ship whose.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DevKeyPair, generateDevKeyPair, signDevToken } from '../../src/auth/dev-keys.js';
import { createKeyStore } from '../../src/auth/key-store.js';
import { createTokenVerifier } from '../../src/auth/verifier.js';
import { encodeCursor } from '../../src/orders/listing.js';
import { createMetrics } from '../../src/platform/metrics.js';
import { createAuthentication } from '../../src/server/plugins/authentication.js';
import { buildTestApp, postOrder, validOrder } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const ISSUER = 'https://idp.example.test';
const AUDIENCE = 'orders';

let tdb: TestDatabase;
/** AUTH_MODE=none: no caller, every customer. */
let open: FastifyInstance;
/** AUTH_MODE=jwt. */
let secured: FastifyInstance;
let keys: DevKeyPair;

beforeAll(async () => {
  keys = await generateDevKeyPair('ES256');
  tdb = await createTestDatabase();
  ({ app: open } = await buildTestApp(tdb));
  const metrics = createMetrics({ defaultMetrics: false });
  const verifier = createTokenVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    clockToleranceS: 30,
    keys: createKeyStore({ load: async () => keys.jwks }).resolve,
  });
  ({ app: secured } = await buildTestApp(tdb, {
    metrics,
    auth: createAuthentication({ verifier, metrics }),
  }));
});

afterAll(async () => {
  await open?.close();
  await secured?.close();
  await tdb?.drop();
});

const bearer = async (sub: string, scope: string) => ({
  authorization: `Bearer ${await signDevToken({
    privateJwk: keys.privateJwk,
    subject: sub,
    scope,
    issuer: ISSUER,
    audience: AUDIENCE,
    ttlSeconds: 300,
  })}`,
});

interface Page {
  orders: { id: string; customerId: string; status: string; createdAt: string }[];
  nextCursor: string | null;
}

async function list(query: string, headers: Record<string, string> = {}, app = open) {
  const res = await app.inject({ method: 'GET', url: `/orders${query}`, headers });
  return res;
}

async function createFor(customerId: string) {
  const res = await postOrder(open, { ...validOrder(), customerId });
  expect(res.statusCode).toBe(201);
  return res.json() as { id: string; createdAt: string };
}

/**
 * Inserts `count` orders for `customerId` in SQL: created_at at microsecond precision, spread
 * over `spreadMs` and in groups of three sharing one instant (the id breaks the tie).
 */
async function seed(customerId: string, count: number, options: { status?: string; spreadMs?: number } = {}) {
  const rows = await tdb.db.query<{ id: string }>(
    `INSERT INTO orders (id, customer_id, currency, total, created_at, status)
     SELECT gen_random_uuid(), $1, 'EUR', 100,
            now() - interval '1 day' + (n / 3) * make_interval(secs => $3::double precision / 1000 / $2) + interval '7 microseconds',
            $4
     FROM generate_series(1, $2) AS n
     RETURNING id`,
    [customerId, count, options.spreadMs ?? 60_000, options.status ?? 'pending'],
  );
  return rows.rows.map((r) => r.id);
}

/** Follows nextCursor from the first page, returning every page's ids. */
async function pageThrough(
  query: string,
  headers: Record<string, string> = {},
  app = open,
  between?: () => Promise<void>,
) {
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const sep = query ? '&' : '?';
    const res = await list(`${query}${cursor ? `${sep}cursor=${cursor}` : ''}`, headers, app);
    expect(res.statusCode, res.body).toBe(200);
    const page = res.json() as Page;
    seen.push(...page.orders.map((o) => o.id));
    cursor = page.nextCursor;
    pages++;
    if (between) await between();
  } while (cursor && pages < 1000);
  return seen;
}

function expectProblem(res: { statusCode: number; body: string }, status: number, code: string) {
  expect(res.statusCode, res.body).toBe(status);
  expect(JSON.parse(res.body)).toMatchObject({ status, code });
}

describe('GET /orders', () => {
  it('lists newest first (createdAt, then id), 20 by default, with nextCursor and Link keeping the parameters', async () => {
    const ids = await seed('c-newest', 25);
    const first = await list('?customerId=c-newest');
    expect(first.statusCode).toBe(200);
    const page = first.json() as Page;
    expect(page.orders).toHaveLength(20);
    expect(page.nextCursor).toEqual(expect.any(String));
    expect(first.headers.link).toBe(`</orders?customerId=c-newest&cursor=${page.nextCursor}>; rel="next"`);
    const rows = await tdb.db.query<{ id: string }>(
      `SELECT id FROM orders WHERE customer_id = 'c-newest' ORDER BY created_at DESC, id DESC`,
    );
    expect(page.orders.map((o) => o.id)).toEqual(rows.rows.slice(0, 20).map((r) => r.id));
    const link = /^<([^>]+)>; rel="next"$/.exec(first.headers.link as string)![1]!;
    const second = await open.inject({ method: 'GET', url: link });
    const rest = second.json() as Page;
    expect(rest.orders.map((o) => o.id)).toEqual(rows.rows.slice(20).map((r) => r.id));
    expect(rest.nextCursor).toBeNull();
    expect(second.headers.link).toBeUndefined();
    expect(new Set([...page.orders, ...rest.orders].map((o) => o.id))).toEqual(new Set(ids));
  });

  it('pages through ties and microseconds exactly once each (limit 1, 3, 100)', async () => {
    const ids = await seed('c-ties', 31, { spreadMs: 1 });
    for (const limit of [1, 3, 100]) {
      const seen = await pageThrough(`?customerId=c-ties&limit=${limit}`);
      expect(seen).toHaveLength(ids.length);
      expect(new Set(seen)).toEqual(new Set(ids));
    }
    const res = await list('?customerId=c-ties&limit=3');
    expect(res.headers.link).toMatch(
      /^<\/orders\?customerId=c-ties&limit=3&cursor=[A-Za-z0-9_-]+>; rel="next"$/,
    );
  });

  it('filters by status, and a page body is the order as GET shows it', async () => {
    await seed('c-status', 4);
    const cancelled = await seed('c-status', 3, { status: 'cancelled' });
    const page = (await list('?customerId=c-status&status=cancelled')).json() as Page;
    expect(page.orders.map((o) => o.id).sort()).toEqual([...cancelled].sort());
    expect(page.orders.every((o) => o.status === 'cancelled')).toBe(true);
    const order = await createFor('c-body');
    const listed = (await list('?customerId=c-body')).json() as Page;
    const read = await open.inject({ method: 'GET', url: `/orders/${order.id}` });
    expect(listed.orders).toEqual([read.json()]);
    expect((await list('?customerId=nobody')).json()).toEqual({ orders: [], nextCursor: null });
  });

  it('refuses a malformed limit, status or cursor with 400 validation_failed', async () => {
    for (const query of [
      '?limit=0',
      '?limit=101',
      '?limit=abc',
      '?limit=1.5',
      '?limit=',
      '?limit=-1',
      '?limit=020',
      '?status=lost',
      '?status=pending&status=cancelled',
      '?cursor=',
      '?cursor=%%%',
      '?cursor=not-a-cursor',
      `?cursor=${Buffer.from('2026-01-01T00:00:00.000000Z|nope').toString('base64url')}`,
      `?cursor=${Buffer.from('2026-02-31T00:00:00.000000Z|0190a8f0-0000-7000-8000-000000000000').toString('base64url')}`,
      `?cursor=${encodeCursor({ createdAt: '2026-01-01T00:00:00.000000Z', id: '0190a8f0-0000-7000-8000-000000000000' })}=`,
      `?customerId=${'x'.repeat(65)}`,
    ]) {
      expectProblem(await list(query), 400, 'validation_failed');
    }
    for (const query of ['?limit=1', '?limit=100', '?status=shipped']) {
      expect((await list(query)).statusCode, query).toBe(200);
    }
    const valid = encodeCursor({
      createdAt: '2026-01-01T00:00:00.000000Z',
      id: '0190a8f0-0000-7000-8000-000000000000',
    });
    expect((await list(`?cursor=${valid}`)).statusCode).toBe(200);
  });

  it('never repeats or skips an order that existed before page 1 while orders keep arriving', async () => {
    const existing = await seed('c-busy', 150, { spreadMs: 5_000 });
    let inserted = 0;
    let paging = true;
    const arrivals = (async () => {
      while (paging) {
        // New orders (now) and, as a clock-skewed pod would write them, older ones in between.
        if (inserted % 2 === 0) await createFor('c-busy');
        else await seed('c-busy', 2, { spreadMs: 5_000 });
        inserted++;
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const insertedAt: number[] = [];
    const seen = await pageThrough('?customerId=c-busy&limit=7', {}, open, async () => {
      insertedAt.push(inserted);
      await new Promise((resolve) => setTimeout(resolve, 2));
    });
    paging = false;
    await arrivals;
    expect(inserted, 'orders arrived while paging').toBeGreaterThan(5);
    expect(insertedAt.at(-1)! - insertedAt[0]!).toBeGreaterThan(0);
    expect(new Set(seen).size, 'no order twice').toBe(seen.length);
    const seenSet = new Set(seen);
    expect(
      existing.filter((id) => !seenSet.has(id)),
      'no existing order skipped',
    ).toEqual([]);
  });
});

describe('ownership', () => {
  it("a customer's token lists its own orders; another customerId is 403; admin lists any or all; fulfil may not list", async () => {
    const mine = await seed('c-own', 3);
    const theirs = await seed('c-other', 2);
    const asCustomer = await bearer('c-own', 'orders:read');
    const own = (await list('', asCustomer, secured)).json() as Page;
    expect(own.orders.map((o) => o.id).sort()).toEqual([...mine].sort());
    expect((await list('?customerId=c-own', asCustomer, secured)).statusCode).toBe(200);
    expectProblem(await list('?customerId=c-other', asCustomer, secured), 403, 'forbidden');
    expectProblem(await list('', await bearer('c-own', 'orders:write'), secured), 403, 'forbidden');
    expect((await list('', {}, secured)).statusCode).toBe(401);

    const admin = await bearer('staff', 'orders:admin');
    const all = await pageThrough('?limit=100', admin, secured);
    expect(all).toEqual(expect.arrayContaining([...mine, ...theirs]));
    const one = (await list('?customerId=c-other', admin, secured)).json() as Page;
    expect(one.orders.map((o) => o.id).sort()).toEqual([...theirs].sort());
    // A control character in the filter is a bad query (400), never a database error.
    expectProblem(await list('?customerId=%00', admin, secured), 400, 'validation_failed');
    expectProblem(await list('?customerId=a%01b', admin, secured), 400, 'validation_failed');
    // The contract gives orders:fulfil reading any order by id and shipping, not listing.
    expectProblem(await list('', await bearer('packer', 'orders:fulfil'), secured), 403, 'forbidden');
    expectProblem(
      await list('?customerId=c-other', await bearer('packer', 'orders:fulfil orders:read'), secured),
      403,
      'forbidden',
    );
  });

  it("cancel: orders:write on its own orders (another customer's is 404), admin any; ship: fulfil or admin, any order", async () => {
    const mine = (await seed('c-cancel', 1))[0]!;
    const theirs = (await seed('c-someone', 1))[0]!;
    const post = async (id: string, kind: string, headers: Record<string, string>) =>
      secured.inject({ method: 'POST', url: `/orders/${id}/${kind}`, headers });
    const writer = await bearer('c-cancel', 'orders:write');
    expectProblem(await post(theirs, 'cancel', writer), 404, 'not_found');
    expect((await post(mine, 'cancel', writer)).statusCode).toBe(200);
    expectProblem(await post(mine, 'cancel', await bearer('c-cancel', 'orders:read')), 403, 'forbidden');
    expectProblem(await post(mine, 'ship', writer), 403, 'forbidden');
    expectProblem(await post(theirs, 'cancel', await bearer('packer', 'orders:fulfil')), 403, 'forbidden');
    // Fulfil may ship any order (this one is pending: refused by the lifecycle, not by ownership).
    expectProblem(
      await post(theirs, 'ship', await bearer('packer', 'orders:fulfil')),
      409,
      'invalid_transition',
    );
    expect((await post(theirs, 'cancel', await bearer('root', 'orders:admin'))).statusCode).toBe(200);
    expect((await post(theirs, 'cancel', {})).statusCode).toBe(401);
  });
});
