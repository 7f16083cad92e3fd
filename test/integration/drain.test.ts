/**
 * The gentle drain `orders serve` runs on shutdown (commands/serve.ts), on a real listening app:
 * idle keep-alive connections are closed, but never one that has started sending a request.
 */
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Lifecycle } from '../../src/server/app.js';
import { IDLE_CONNECTION_GRACE_MS, trackConnections } from '../../src/server/connections.js';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { openRaw, parseResponse } from '../helpers/raw-http.js';

/** Long enough for the straddling request below, short enough to wait out in a test. */
const REQUEST_TIMEOUT_MS = 1_500;

let tdb: TestDatabase;
let app: FastifyInstance;
let lifecycle: Lifecycle;
let connections: ReturnType<typeof trackConnections>;
let port: number;

beforeAll(async () => {
  tdb = await createTestDatabase();
});

afterAll(async () => {
  await tdb?.drop();
});

// Each test drains (closes) its own app.
beforeEach(async () => {
  ({ app, lifecycle } = await buildTestApp(tdb, { requestTimeoutMs: REQUEST_TIMEOUT_MS }));
  connections = trackConnections(app.server);
  await app.listen({ port: 0, host: '127.0.0.1' });
  port = (app.server.address() as AddressInfo).port;
});

afterEach(async () => {
  connections.closeAll();
  await app?.close();
});

/** The drain's HTTP half, in serve's order: ask clients to close, sweep idle connections, close. */
function startDrain() {
  lifecycle.draining = true;
  const stopSweep = connections.drainGently(IDLE_CONNECTION_GRACE_MS);
  return app.close().finally(stopSweep);
}

const HEALTHZ = 'GET /healthz HTTP/1.1\r\nHost: orders\r\n\r\n';

describe('drain', () => {
  it('serves a request whose headers straddle the start of the drain, with Connection: close', async () => {
    const client = await openRaw(port);
    client.write(HEALTHZ);
    await client.waitFor('{"status":"ok"}');
    const afterFirst = client.received().length;

    client.write(HEALTHZ.slice(0, 20));
    await sleep(50); // the bytes reach the server before the drain starts
    const closed = startDrain();
    await sleep(IDLE_CONNECTION_GRACE_MS + 300);
    client.write(HEALTHZ.slice(20));

    const { error } = await client.ended;
    expect(error).toBeUndefined();
    const second = parseResponse(client.received().slice(afterFirst));
    expect(second.status).toBe(200);
    expect(second.headers.connection).toBe('close');
    await closed;
  });

  it('still times out, with 408, a request that never finishes arriving during the drain', async () => {
    // Node stops timing requests once the server closes: the drain must not wait for this one
    // until SHUTDOWN_TIMEOUT_MS.
    const client = await openRaw(port);
    client.write(HEALTHZ.slice(0, 20));
    await sleep(50);
    const started = Date.now();
    const drained = await Promise.race([
      startDrain().then(() => true),
      sleep(REQUEST_TIMEOUT_MS + 3_000).then(() => false),
    ]);
    expect(drained).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
    await client.ended;
    const response = parseResponse(client.received());
    expect(response.status).toBe(408);
    expect(JSON.parse(response.body)).toMatchObject({ code: 'request_timeout' });
  });

  it('closes a connection idle since its last response after the grace period', async () => {
    const client = await openRaw(port);
    client.write(HEALTHZ);
    await client.waitFor('{"status":"ok"}');
    const started = Date.now();
    await startDrain();
    const { error } = await client.ended;
    expect(error).toBeUndefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(IDLE_CONNECTION_GRACE_MS - 100);
  });

  it('closes a connection that never sent a byte', async () => {
    const client = await openRaw(port);
    await startDrain();
    expect((await client.ended).error).toBeUndefined();
    expect(client.received()).toBe('');
  });
});
