/**
 * RequestCancellation: the request deadline's signal, standing in for an AbortController's (the
 * database relies on `aborted`, `reason` and abort listeners, with AbortSignal's semantics).
 * Deadlines: the queue of requests in flight under one timer. The plugin: deadlines and clients
 * that go away, on a real listening server (keep-alive and pipelined connections included).
 */
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CancelSignal } from '../../src/platform/db.js';
import {
  Deadlines,
  type InFlight,
  RequestCancellation,
  requestDeadline,
} from '../../src/server/plugins/request-deadline.js';
import { openRaw } from '../helpers/raw-http.js';

describe('RequestCancellation', () => {
  it('runs its listeners once, in the order they were added, after setting aborted and reason', () => {
    const signal = new RequestCancellation();
    const seen: string[] = [];
    signal.addEventListener('abort', () =>
      seen.push(`a:${signal.aborted}:${(signal.reason as Error).message}`),
    );
    signal.addEventListener('abort', () => seen.push('b'));
    expect(signal.aborted).toBe(false);
    signal.abort(new Error('deadline'));
    signal.abort(new Error('again'));
    expect(seen).toEqual(['a:true:deadline', 'b']);
    expect((signal.reason as Error).message).toBe('deadline');
  });

  it('a removed listener does not run; removing an unknown one is harmless', () => {
    const signal = new RequestCancellation();
    const seen: string[] = [];
    const removed = () => seen.push('removed');
    signal.removeEventListener('abort', removed);
    signal.addEventListener('abort', removed);
    signal.addEventListener('abort', () => seen.push('kept'));
    signal.removeEventListener('abort', removed);
    signal.abort(new Error('x'));
    expect(seen).toEqual(['kept']);
  });

  it('a listener added after the abort never runs (AbortSignal does not replay the event either)', () => {
    const signal = new RequestCancellation();
    signal.abort(new Error('gone'));
    let ran = false;
    signal.addEventListener('abort', () => {
      ran = true;
    });
    expect(ran).toBe(false);
    expect(signal.aborted).toBe(true);
  });

  it('behaves like AbortController for the same sequence', () => {
    const run = (signal: { addEventListener(t: 'abort', l: () => void): void }, abort: () => void) => {
      const order: number[] = [];
      signal.addEventListener('abort', () => order.push(1));
      signal.addEventListener('abort', () => order.push(2));
      abort();
      abort();
      return order;
    };
    const controller = new AbortController();
    const ours = new RequestCancellation();
    expect(run(ours, () => ours.abort(new Error('r')))).toEqual(
      run(controller.signal, () => controller.abort(new Error('r'))),
    );
  });
});

describe('Deadlines', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const reasonOf = (request: InFlight) => (request.reason as Error | undefined)?.message;

  it('aborts each request at its deadline, in arrival order, and not before', () => {
    const deadlines = new Deadlines(1_000);
    const first = deadlines.start();
    vi.advanceTimersByTime(300);
    const second = deadlines.start();
    const order: string[] = [];
    first.addEventListener('abort', () => order.push('first'));
    second.addEventListener('abort', () => order.push('second'));

    vi.advanceTimersByTime(699);
    expect(first.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(first.aborted).toBe(true);
    expect(reasonOf(first)).toBe('The request did not finish within 1000 ms.');
    expect(second.aborted).toBe(false);
    vi.advanceTimersByTime(299);
    expect(second.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(order).toEqual(['first', 'second']);
    expect(deadlines.size).toBe(0);
  });

  it('never aborts a finished request; finished requests leave once everything older has', () => {
    const deadlines = new Deadlines(1_000);
    const slow = deadlines.start();
    const fast = deadlines.start();
    deadlines.finish(fast);
    expect(deadlines.size).toBe(2); // behind the slow one
    deadlines.finish(slow);
    expect(deadlines.size).toBe(0);
    vi.advanceTimersByTime(5_000);
    expect(slow.aborted || fast.aborted).toBe(false);
  });

  it('stays small under a steady load, and drains behind a stuck request at its deadline', () => {
    const deadlines = new Deadlines(1_000);
    let max = 0;
    for (let i = 0; i < 10_000; i++) {
      const request = deadlines.start();
      max = Math.max(max, deadlines.size);
      vi.advanceTimersByTime(1);
      deadlines.finish(request);
    }
    expect(max).toBe(1);
    expect(deadlines.size).toBe(0);

    const stuck = deadlines.start();
    const behind: InFlight[] = [];
    for (let i = 0; i < 500; i++) {
      const request = deadlines.start();
      behind.push(request);
      vi.advanceTimersByTime(1);
      deadlines.finish(request);
    }
    expect(deadlines.size).toBe(501); // held by the stuck one, and only until its deadline
    vi.advanceTimersByTime(500);
    expect(stuck.aborted).toBe(true);
    expect(deadlines.size).toBe(0);
    expect(behind.some((request) => request.aborted)).toBe(false);
  });

  it('keeps arrival order across growth, and skips requests that ended', () => {
    const deadlines = new Deadlines(100);
    const requests = Array.from({ length: 300 }, () => deadlines.start());
    const timedOut: number[] = [];
    requests.forEach((request, i) => {
      request.addEventListener('abort', () => {
        if (reasonOf(request)?.startsWith('The request did not finish')) timedOut.push(i);
      });
      if (i % 3 === 0) deadlines.finish(request);
      if (i % 3 === 1) request.abort(new Error('client gone'));
    });
    vi.advanceTimersByTime(99);
    expect(timedOut).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(timedOut).toEqual(requests.map((_, i) => i).filter((i) => i % 3 === 2));
    expect(deadlines.size).toBe(0);
  });

  it('a listener that throws does not stop the deadlines after it', () => {
    const deadlines = new Deadlines(100);
    const throwing = deadlines.start();
    const next = deadlines.start();
    throwing.addEventListener('abort', () => {
      throw new Error('listener failed');
    });
    expect(() => vi.advanceTimersByTime(100)).toThrow('listener failed');
    vi.advanceTimersByTime(1);
    expect(next.aborted).toBe(true);
    expect(deadlines.size).toBe(0);
  });

  it('re-arms for the next request when the one it was armed for has left', () => {
    const deadlines = new Deadlines(1_000);
    deadlines.finish(deadlines.start());
    vi.advanceTimersByTime(400);
    const later = deadlines.start();
    vi.advanceTimersByTime(999);
    expect(later.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(later.aborted).toBe(true);
  });
});

describe('requestDeadline on a listening server', () => {
  const TIMEOUT_MS = 300;
  let app: FastifyInstance;
  let port: number;
  /** Each request's cancellation, by its x-name header. */
  let seen: Map<string, InFlight>;

  /** Resolves with the abort reason's message, or with 'done' after `ms`. */
  function outcome(signal: CancelSignal, ms: number): Promise<string> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve('done'), ms);
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve((signal.reason as Error).message);
      });
    });
  }

  beforeEach(async () => {
    seen = new Map();
    app = Fastify();
    await app.register(requestDeadline, { timeoutMs: TIMEOUT_MS });
    app.addHook('onRequest', (request, _reply, done) => {
      seen.set(String(request.headers['x-name']), request.cancellation as InFlight);
      done();
    });
    // Answers after `ms` (or at the abort) with what happened.
    app.get<{ Querystring: { ms: string } }>('/work', async (request) => ({
      outcome: await outcome(request.cancellation, Number(request.query.ms)),
    }));
    app.get('/big', async (_request, reply) => reply.send(Buffer.alloc(32 * 1024 * 1024, 'x')));
    // A chunk every 20 ms for 10 s.
    app.get('/stream', async (_request, reply) => {
      let chunks = 0;
      const body = new Readable({
        read() {
          setTimeout(() => this.push(chunks++ < 500 ? 'chunk\n' : null), 20);
        },
      });
      return reply.send(body);
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    port = (app.server.address() as AddressInfo).port;
  });

  afterEach(async () => {
    await app.close();
  });

  const get = (name: string, path: string) => `GET ${path} HTTP/1.1\r\nHost: t\r\nX-Name: ${name}\r\n\r\n`;

  async function until(predicate: () => boolean, ms = 2_000) {
    const deadline = Date.now() + ms;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error('condition not met in time');
      await sleep(5);
    }
  }

  it('aborts a request still running at the deadline, on time', async () => {
    const started = Date.now();
    const res = await fetch(`http://127.0.0.1:${port}/work?ms=5000`, { headers: { 'x-name': 'slow' } });
    const elapsed = Date.now() - started;
    expect(await res.json()).toEqual({ outcome: `The request did not finish within ${TIMEOUT_MS} ms.` });
    expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT_MS - 5);
    expect(elapsed).toBeLessThan(TIMEOUT_MS + 100);
  });

  it('never aborts answered requests on a kept-alive connection, nor when it closes', async () => {
    const client = await openRaw(port);
    client.write(get('a', '/work?ms=0'));
    await client.waitFor('{"outcome":"done"}');
    client.write(get('b', '/work?ms=0'));
    await until(() => client.received().split('{"outcome":"done"}').length === 3);
    await sleep(TIMEOUT_MS + 50);
    client.socket.destroy();
    await client.ended;
    await sleep(20);
    expect(seen.get('a')?.aborted).toBe(false);
    expect(seen.get('b')?.aborted).toBe(false);
    expect(seen.get('b')?.finished).toBe(true);
  });

  it('aborts every request in flight on a connection the client closes, and only those', async () => {
    const client = await openRaw(port);
    // Pipelined: the first is answered, the next two are still running when the client leaves.
    client.write(get('a', '/work?ms=0') + get('b', '/work?ms=5000') + get('c', '/work?ms=5000'));
    await until(() => seen.has('c'));
    await client.waitFor('{"outcome":"done"}');
    const other = await openRaw(port);
    other.write(get('other', '/work?ms=5000'));
    await until(() => seen.has('other'));

    client.socket.destroy();
    await until(() => seen.get('c')?.aborted === true);
    const b = seen.get('b') as InFlight;
    expect(b.aborted).toBe(true);
    expect((b.reason as Error).message).toBe('The client closed the connection.');
    expect(seen.get('a')?.aborted).toBe(false);
    expect(seen.get('other')?.aborted).toBe(false);
    other.socket.destroy();
    await until(() => seen.get('other')?.aborted === true);
  });

  it('ends the request of a client that leaves mid-response (socket destroyed while writing)', async () => {
    // A streamed body: the response never finishes, fastify runs no onResponse; the close aborts.
    const streaming = await openRaw(port);
    streaming.write(get('stream', '/stream'));
    await streaming.waitFor('chunk');
    const stream = seen.get('stream') as InFlight;
    expect(stream.ended).toBe(false);
    streaming.socket.destroy();
    await until(() => stream.ended);
    expect(stream.aborted).toBe(true);
    expect((stream.reason as Error).message).toBe('The client closed the connection.');

    // A body handed to the socket whole (32 MiB, the client not reading), then a reset: Node 20
    // still finishes the response (answered, not aborted, as with a listener on the response);
    // Node 22 and later do not (aborted: the client left). Either way the request has ended.
    const big = await openRaw(port);
    big.socket.pause();
    big.write(get('big', '/big'));
    await until(() => seen.has('big'));
    await sleep(50);
    const bigRequest = seen.get('big') as InFlight;
    expect(bigRequest.ended).toBe(false);
    big.socket.destroy();
    await until(() => bigRequest.ended);
    expect(bigRequest.finished).toBe(!bigRequest.aborted);
    if (bigRequest.aborted)
      expect((bigRequest.reason as Error).message).toBe('The client closed the connection.');
  });

  it('gives each inject (a mock socket) its own deadline', async () => {
    const res = await app.inject({ url: '/work?ms=0', headers: { 'x-name': 'inject' } });
    expect(res.json()).toEqual({ outcome: 'done' });
    expect(seen.get('inject')?.finished).toBe(true);
    const timedOut = await app.inject({ url: '/work?ms=5000', headers: { 'x-name': 'inject-slow' } });
    expect(timedOut.json()).toEqual({ outcome: `The request did not finish within ${TIMEOUT_MS} ms.` });
  });
});
