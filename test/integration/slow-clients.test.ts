/**
 * REQUEST_TIMEOUT_MS bounds a request from its first byte to its last: a client still sending
 * when it passes gets 408 request_timeout and a closed connection, however slowly it trickles.
 * Kept-alive idle connections outlive a load balancer's 60 s idle timeout.
 */
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { openRaw, parseResponse, type RawClient } from '../helpers/raw-http.js';

const REQUEST_TIMEOUT_MS = 500;
/** How long a test trickles before giving up: the deadline plus generous slack for a busy machine. */
const TRICKLE_FOR_MS = 6_000;

let tdb: TestDatabase;
let app: FastifyInstance;
let port: number;

beforeAll(async () => {
  tdb = await createTestDatabase();
  ({ app } = await buildTestApp(tdb, { requestTimeoutMs: REQUEST_TIMEOUT_MS }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  port = (app.server.address() as AddressInfo).port;
});

afterAll(async () => {
  await app?.close();
  await tdb?.drop();
});

/** Sends one byte of `filler` every 100 ms until the server closes the socket or time runs out. */
async function trickle(client: RawClient, filler: string) {
  let closed = false;
  void client.ended.then(() => {
    closed = true;
  });
  const until = Date.now() + TRICKLE_FOR_MS;
  while (!closed && Date.now() < until) {
    client.write(filler);
    await sleep(100);
  }
  if (!closed) client.socket.destroy();
  return client.ended;
}

function expectRequestTimeout(raw: string) {
  const response = parseResponse(raw);
  expect(response.status).toBe(408);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(response.headers.connection).toBe('close');
  expect(JSON.parse(response.body)).toMatchObject({
    status: 408,
    code: 'request_timeout',
    type: '/problems/request_timeout',
  });
}

describe('slow clients', () => {
  it('answers 408 request_timeout to a client still sending its body when REQUEST_TIMEOUT_MS passes', async () => {
    const client = await openRaw(port);
    client.write(
      'POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Type: application/json\r\n' +
        'Content-Length: 100000\r\n\r\n{"customerId":"',
    );
    const { afterMs } = await trickle(client, 'a');
    expectRequestTimeout(client.received());
    expect(afterMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50);
    expect(afterMs).toBeLessThan(TRICKLE_FOR_MS);
  });

  it('answers 408 request_timeout to a client still sending its headers', async () => {
    const client = await openRaw(port);
    client.write('GET /healthz HTTP/1.1\r\nHost: orders\r\nX-Slow: ');
    const { afterMs } = await trickle(client, 'a');
    expectRequestTimeout(client.received());
    expect(afterMs).toBeLessThan(TRICKLE_FOR_MS);
  });

  it('counts the deadline per request on a kept-alive connection, from its first byte', async () => {
    const client = await openRaw(port);
    client.write('GET /healthz HTTP/1.1\r\nHost: orders\r\n\r\n');
    await client.waitFor('{"status":"ok"}');
    // Idle longer than the request deadline: only the next request's first byte starts its clock.
    await sleep(REQUEST_TIMEOUT_MS * 2);
    client.write('GET /healthz HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n');
    await client.ended;
    expect(client.received().match(/HTTP\/1\.1 200 OK/g)).toHaveLength(2);
  });

  it('still answers a request the parser rejects with 400 problem+json, and closes', async () => {
    const client = await openRaw(port);
    client.write('GET /healthz HTTP/1.1\r\nHost orders\r\n\r\n');
    const { error } = await client.ended;
    expect(error).toBeUndefined();
    const response = parseResponse(client.received());
    expect(response.status).toBe(400);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(response.body)).toMatchObject({ code: 'validation_failed' });
  });

  it('keeps idle connections longer than load balancers do (they close at 60 s)', () => {
    expect(app.server.keepAliveTimeout).toBeGreaterThanOrEqual(61_000);
    // Headers are part of the request: their deadline is the request's.
    expect(app.server.requestTimeout).toBe(REQUEST_TIMEOUT_MS);
    expect(app.server.headersTimeout).toBe(REQUEST_TIMEOUT_MS);
    // A connection that never sends a byte is no request, but must not be held forever either.
    expect(app.server.timeout).toBeGreaterThanOrEqual(app.server.keepAliveTimeout);
  });
});
