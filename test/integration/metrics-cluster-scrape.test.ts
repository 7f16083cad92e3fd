/**
 * /metrics under `serve --processes N`: the answer is what the cluster collected; when a process
 * does not answer in time the scrape fails with 503 (a partial sum would read as a counter reset).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let tdb: TestDatabase;
let t: TestApp;

beforeAll(async () => {
  tdb = await createTestDatabase();
  t = await buildTestApp(tdb);
});
afterAll(async () => {
  await t.app.close();
  await tdb.drop();
});

describe('GET /metrics in a serve cluster', () => {
  it('answers the aggregate the cluster collected', async () => {
    t.metrics.aggregateAcrossProcesses(async () => 'orders_created_total 7\n');
    const res = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe(t.metrics.registry.contentType);
    expect(res.body).toBe('orders_created_total 7\n');
  });

  it('fails the scrape with 503 and Retry-After when a process did not answer', async () => {
    t.metrics.aggregateAcrossProcesses(() => Promise.reject(new Error('serve process(es) 2 did not answer')));
    const res = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(503);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.headers['retry-after']).toBe('5');
    expect(res.json()).toMatchObject({ code: 'unavailable' });
    expect(res.body).not.toContain('did not answer');
  });
});
