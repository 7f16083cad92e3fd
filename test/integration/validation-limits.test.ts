/**
 * A validation failure lists at most 50 errors, with `errorCount` giving the total: a body of
 * 90,000 unknown keys must not come back as 90,000 entries (4 MB of JSON built on the event loop).
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, postOrder, validOrder } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let tdb: TestDatabase;
let app: FastifyInstance;

beforeAll(async () => {
  tdb = await createTestDatabase();
  ({ app } = await buildTestApp(tdb));
});

afterAll(async () => {
  await app?.close();
  await tdb?.drop();
});

/** A valid order plus `count` unknown top-level keys. */
function withUnknownKeys(count: number): string {
  const extra = Array.from({ length: count }, (_, i) => `"k${i}":0`).join(',');
  return `${JSON.stringify(validOrder()).slice(0, -1)},${extra}}`;
}

describe('validation errors', () => {
  it('lists at most 50 errors and counts them all in errorCount', async () => {
    const body = withUnknownKeys(90_000);
    expect(body.length).toBeLessThan(1024 * 1024);
    const res = await postOrder(app, body);
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body.length).toBeLessThan(10_000);
    const problem = JSON.parse(res.body);
    expect(problem.code).toBe('validation_failed');
    expect(problem.errors).toHaveLength(50);
    expect(problem.errorCount).toBe(90_000);
    expect(problem.errors[0]).toEqual({ path: '/k0', message: 'unknown field' });
  });

  it('counts unknown keys and schema violations together', async () => {
    const items = Array.from({ length: 60 }, () => ({ sku: '', quantity: 0, unitPrice: 1 }));
    const res = await postOrder(app, { ...validOrder(), items, extra: 1 });
    expect(res.statusCode).toBe(400);
    const problem = JSON.parse(res.body);
    expect(problem.errors).toHaveLength(50);
    // Two per item (empty sku, zero quantity) and the unknown key.
    expect(problem.errorCount).toBe(121);
  });

  it('has no errorCount when every error is listed', async () => {
    const res = await postOrder(app, { ...validOrder(), a: 1, b: 2 });
    expect(res.statusCode).toBe(400);
    const problem = JSON.parse(res.body);
    expect(problem.errors).toEqual([
      { path: '/a', message: 'unknown field' },
      { path: '/b', message: 'unknown field' },
    ]);
    expect(problem).not.toHaveProperty('errorCount');
  });

  it('documents the cap in the OpenAPI Problem schema', async () => {
    const res = await app.inject({ method: 'GET', url: '/openapi.json' });
    const problem = JSON.parse(res.body).components.schemas.Problem;
    expect(problem.properties.errors.maxItems).toBe(50);
    expect(problem.properties.errorCount.type).toBe('integer');
  });
});
