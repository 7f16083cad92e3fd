import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let tdb: TestDatabase;

beforeAll(async () => {
  tdb = await createTestDatabase({ migrate: false });
});
afterAll(async () => {
  await tdb?.drop();
});

describe('/readyz', () => {
  it('is 503 until the schema is migrated, and from shutdown on', async () => {
    const { app, lifecycle } = await buildTestApp(tdb);
    const before = await app.inject({ method: 'GET', url: '/readyz' });
    expect(before.statusCode).toBe(503);
    expect(before.json().code).toBe('unavailable');
    expect(before.headers['retry-after']).toBeDefined();

    const { migrate } = await import('../../src/platform/migrations.js');
    const { testLogger } = await import('../helpers/db.js');
    await migrate({ databaseUrl: tdb.url, direction: 'up', logger: testLogger });
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);

    lifecycle.shuttingDown = true;
    lifecycle.draining = true;
    const during = await app.inject({ method: 'GET', url: '/readyz' });
    expect(during.statusCode).toBe(503);
    // Everything else is still served during the delay, asking clients to reconnect elsewhere.
    const health = await app.inject({ method: 'GET', url: '/healthz' });
    expect(health.statusCode).toBe(200);
    expect(health.headers.connection).toBe('close');
    await app.close();
  });
});
