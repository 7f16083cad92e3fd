/**
 * trackConnections on a plain http.Server: a connection counts as idle only once every response
 * on it has closed, from that moment, and only while no byte of a next request has arrived since;
 * pipelined requests count one by one. (The drain on the real app: test/integration/drain.test.ts.)
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { trackConnections } from '../../src/server/connections.js';
import { openRaw } from '../helpers/raw-http.js';

const GRACE_MS = 100;
let server: Server;
let connections: ReturnType<typeof trackConnections>;
let port: number;

/** GET /?ms=N answers after N ms. */
beforeEach(async () => {
  server = createServer((request, response) => {
    const ms = Number(new URL(request.url ?? '/', 'http://x').searchParams.get('ms') ?? 0);
    setTimeout(() => response.end('ok'), ms);
  });
  connections = trackConnections(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterEach(async () => {
  connections.closeAll();
  await new Promise((resolve) => server.close(resolve));
});

const get = (ms: number) => `GET /?ms=${ms} HTTP/1.1\r\nHost: t\r\n\r\n`;
const answers = (text: string) => text.split('\r\n\r\nok').length - 1;

describe('trackConnections', () => {
  it('counts a connection idle only once its response closed, and from then on', async () => {
    const client = await openRaw(port);
    client.write(get(400));
    await sleep(50);
    const stop = connections.drainGently(GRACE_MS);
    const { afterMs } = await client.ended;
    stop();
    expect(answers(client.received())).toBe(1);
    // Answered at ~400 ms, closed a grace period later (the sweep runs every 50 ms).
    expect(afterMs).toBeGreaterThanOrEqual(400 + GRACE_MS);
    expect(afterMs).toBeLessThan(400 + GRACE_MS + 400);
  });

  it('never closes a connection on which a next request has begun arriving', async () => {
    const client = await openRaw(port);
    client.write(get(0));
    await client.waitFor('ok');
    client.write(get(0).slice(0, 10));
    await sleep(50);
    const stop = connections.drainGently(GRACE_MS);
    await sleep(GRACE_MS * 3);
    client.write(get(0).slice(10));
    await client.ended;
    stop();
    expect(answers(client.received())).toBe(2);
  });

  it('counts pipelined requests one by one: idle after the last response', async () => {
    const client = await openRaw(port);
    client.write(get(0) + get(300) + get(0));
    await sleep(50);
    const stop = connections.drainGently(GRACE_MS);
    const { afterMs } = await client.ended;
    stop();
    expect(answers(client.received())).toBe(3);
    expect(afterMs).toBeGreaterThanOrEqual(300 + GRACE_MS);
  });

  it('counts open connections, forgets closed ones, and closes all on demand', async () => {
    const a = await openRaw(port);
    const b = await openRaw(port);
    a.write(get(0));
    await a.waitFor('ok');
    await sleep(20);
    expect(connections.open).toBe(2);
    a.socket.destroy();
    await a.ended;
    await sleep(20);
    expect(connections.open).toBe(1);
    connections.closeAll();
    await b.ended;
    await sleep(20);
    expect(connections.open).toBe(0);
  });
});
