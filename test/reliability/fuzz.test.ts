/**
 * A seeded fuzzer: thousands of hostile requests (malformed and deeply nested JSON, prototype
 * pollution keys, control characters, lone surrogates, invalid UTF-8, huge numbers, unknown
 * fields, wrong media types, odd paths and methods, oversized headers and bodies). Every answer
 * must be a 2xx or a 4xx problem+json: zero 5xx, no crash, healthy afterwards.
 * Reproduce a run with FUZZ_SEED=<n>.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NEEDS_SERVER, serverUrl } from '../helpers/db.js';
import { fetchPostOrder } from '../helpers/process.js';
import { mulberry32 } from '../helpers/random.js';
import { createMigratedDatabase, type RunningServer, startServe } from '../helpers/server.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261125);
const COUNT = Number(process.env.FUZZ_COUNT ?? 2500);

type Rand = ReturnType<typeof mulberry32>;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

const NASTY_VALUES = [
  null,
  true,
  0,
  -1,
  1.5,
  1e308,
  -1e308,
  2 ** 53 + 1,
  '',
  ' ',
  '2',
  'x'.repeat(70),
  'a\u0000b',
  '\u007f',
  '\ud800',
  '\udc00x',
  '😀',
  '<script>',
  "'; DROP TABLE orders; --",
  [],
  {},
  { __proto__: { polluted: true } },
  [[[[[[[]]]]]]],
];

function validOrder(r: Rand) {
  return {
    customerId: `c-${Math.floor(r() * 1000)}`,
    currency: pick(r, ['EUR', 'USD', 'JPY']),
    items: [{ sku: 'SKU-1', quantity: 1 + Math.floor(r() * 5), unitPrice: Math.floor(r() * 10_000) }],
  };
}

function mutate(r: Rand, value: unknown, depth = 0): unknown {
  if (depth > 3 || r() < 0.3) return r() < 0.5 ? pick(r, NASTY_VALUES) : value;
  if (Array.isArray(value)) return value.map((v) => mutate(r, v, depth + 1));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (r() > 0.1) out[k] = mutate(r, v, depth + 1);
    if (r() < 0.2)
      out[pick(r, ['extra', '__proto__', 'constructor', 'prototype', 'items', 'x'.repeat(300)])] = pick(
        r,
        NASTY_VALUES,
      );
    return out;
  }
  return value;
}

function nested(depth: number) {
  return `${'['.repeat(depth)}${']'.repeat(depth)}`;
}

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

function generate(r: Rand): FuzzRequest {
  const json = { 'content-type': 'application/json' };
  const kind = Math.floor(r() * 12);
  switch (kind) {
    case 0:
    case 1:
    case 2:
      return {
        method: 'POST',
        path: '/orders',
        headers: json,
        body: Buffer.from(JSON.stringify(mutate(r, validOrder(r)))),
      };
    case 3: {
      const text = JSON.stringify(validOrder(r));
      const cut = Math.floor(r() * text.length);
      return {
        method: 'POST',
        path: '/orders',
        headers: json,
        body: Buffer.from(text.slice(0, cut) + pick(r, ['', '}', ',', '\u0000', '"'])),
      };
    }
    case 4:
      return {
        method: 'POST',
        path: '/orders',
        headers: json,
        body: Buffer.from(
          pick(r, [
            `{"__proto__":{"admin":true},"customerId":"c","currency":"EUR","items":[]}`,
            `{"constructor":{"prototype":{"admin":true}}}`,
            `{"customerId":"c","currency":"EUR","items":${nested(5000)}}`,
            nested(100_000),
            `{"customerId":"c","currency":"EUR","items":[{"sku":"a","quantity":1e999,"unitPrice":1}]}`,
            `{"customerId":"c","currency":"EUR","items":[{"sku":"a","quantity":1,"unitPrice":123456789012345678901234567890}]}`,
            `{"customerId":"c","customerId":"d","currency":"EUR","items":[{"sku":"a","quantity":1,"unitPrice":1}]}`,
            'null',
            '"string"',
            '12',
            '[]',
          ]),
        ),
      };
    case 5: {
      const bytes = Buffer.from(JSON.stringify(validOrder(r)));
      const bad = Buffer.from([pick(r, [0xff, 0xc0, 0xe9, 0xed, 0x80])]);
      const at = 16;
      return {
        method: 'POST',
        path: '/orders',
        headers: json,
        body: Buffer.concat([bytes.subarray(0, at), bad, bytes.subarray(at)]),
      };
    }
    case 6:
      return {
        method: 'POST',
        path: '/orders',
        headers: pick<Record<string, string>>(r, [
          {},
          { 'content-type': 'text/plain' },
          { 'content-type': 'application/xml' },
          { 'content-type': 'application/x-www-form-urlencoded' },
          { 'content-type': 'multipart/form-data; boundary=x' },
          { 'content-type': 'application/json; charset=latin1' },
        ]),
        body: Buffer.from(JSON.stringify(validOrder(r))),
      };
    case 7:
      return {
        method: pick(r, ['GET', 'DELETE', 'PUT', 'PATCH', 'OPTIONS', 'HEAD']),
        path: pick(r, [
          '/orders',
          '/orders/',
          '/orders/%00',
          '/orders/../../etc/passwd',
          `/orders/${'9'.repeat(300)}`,
          '/orders/00000000-0000-4000-8000-000000000000/events/x',
          '/%E0%A4%A',
          '/orders?id=1&id=2',
          '/readyz?x=%ff',
          '//orders',
        ]),
        headers: {},
      };
    case 8:
      return {
        method: 'GET',
        path: `/orders/${pick(r, ['not-a-uuid', '00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff', "1' OR '1'='1", '%27', 'ZZZZZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZZZZZZZZZ'])}${r() < 0.5 ? '/events' : ''}`,
        headers: {},
      };
    case 9:
      return {
        method: 'POST',
        path: '/orders',
        headers: {
          ...json,
          'idempotency-key': pick(r, [
            '',
            ' ',
            '"',
            '""',
            '"a',
            'a"b',
            'k'.repeat(300),
            '\u00e9',
            'a\tb',
            '"\\x"',
          ]),
        },
        body: Buffer.from(JSON.stringify(validOrder(r))),
      };
    case 10:
      return {
        method: 'GET',
        path: '/healthz',
        headers: { 'x-request-id': pick(r, ['', 'x'.repeat(200), 'a b', '\u00e9']) },
      };
    default:
      return { method: 'POST', path: '/orders', headers: json, body: Buffer.alloc(1024 * 1024 + 10, 0x20) };
  }
}

let database: { url: string; drop(): Promise<void> };
let server: Omit<RunningServer, 'dropDatabase'>;

function send(
  req: FuzzRequest,
): Promise<{ status: number; type: string; body: string } | { error: string } | { unsendable: string }> {
  return new Promise((resolve) => {
    let r: ReturnType<typeof request>;
    try {
      r = request(
        {
          host: '127.0.0.1',
          port: server.port,
          method: req.method,
          path: req.path,
          headers: req.headers,
          timeout: 10_000,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c) => {
            body += c;
          });
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }),
          );
        },
      );
    } catch (error) {
      // Node's client refuses to put some of these on the wire (they are sent raw below).
      resolve({ unsendable: (error as Error).message });
      return;
    }
    r.on('error', (error) => resolve({ error: (error as NodeJS.ErrnoException).code ?? error.message }));
    if (req.body) r.write(req.body);
    r.end();
  });
}

function sendRaw(payload: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(server.port, '127.0.0.1');
    let data = '';
    socket.on('data', (c) => {
      data += c;
    });
    socket.on('error', () => resolve(data));
    socket.on('close', () => resolve(data));
    socket.write(payload);
    setTimeout(() => socket.destroy(), 2_000);
  });
}

describe.skipIf(!serverUrl())(`hostile input (${serverUrl() ? 'real server' : NEEDS_SERVER})`, () => {
  beforeAll(async () => {
    database = await createMigratedDatabase('orders_rel_fuzz');
    server = await startServe(database.url, { WORKER_ENABLED: 'false' });
  });
  afterAll(async () => {
    server?.proc.child.kill('SIGTERM');
    await server?.proc.exited;
    await database?.drop();
  });

  it(`answers ${COUNT} hostile requests (seed ${SEED}) with no 5xx`, async () => {
    const r = mulberry32(SEED);
    const statuses: Record<number, number> = {};
    const failures: string[] = [];
    let unsendable = 0;
    const requests = Array.from({ length: COUNT }, () => generate(r));
    for (let i = 0; i < requests.length; i += 16) {
      const batch = requests.slice(i, i + 16);
      const answers = await Promise.all(batch.map(send));
      answers.forEach((a, j) => {
        const req = batch[j]!;
        const label = `${req.method} ${req.path} ${req.body?.subarray(0, 80).toString('latin1') ?? ''}`;
        if ('unsendable' in a) {
          unsendable++;
          return;
        }
        if ('error' in a) {
          // The server may close the connection after a 413 while the client still uploads.
          if (!(req.body && req.body.length > 1024 * 1024)) failures.push(`${label}: ${a.error}`);
          return;
        }
        statuses[a.status] = (statuses[a.status] ?? 0) + 1;
        if (a.status >= 500) failures.push(`${label}: ${a.status} ${a.body.slice(0, 200)}`);
        if (a.status >= 400 && req.method !== 'HEAD' && !a.type.startsWith('application/problem+json')) {
          failures.push(`${label}: ${a.status} not problem+json (${a.type})`);
        }
      });
    }
    const raw = await Promise.all([
      sendRaw(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
      sendRaw('GARBAGE\r\n\r\n'),
      sendRaw("GET /orders/1'%20OR%20'1'='1 HTTP/1.1\r\nHost: x\r\n\r\n"),
      sendRaw('GET /orders/a b HTTP/1.1\r\nHost: x\r\n\r\n'),
      sendRaw(`POST /orders HTTP/1.1\r\nHost: x\r\nIdempotency-Key: \u00e9\u00e9\r\n\r\n`),
      sendRaw('POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n'),
      sendRaw(
        'POST /orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n',
      ),
    ]);
    for (const answer of raw) {
      if (/^HTTP\/1\.1 5/.test(answer)) failures.push(`raw: ${answer.slice(0, 120)}`);
    }
    console.log(
      `[fuzz] seed ${SEED}: ${COUNT} requests (${unsendable} unsendable by Node's client) + ${raw.length} raw; statuses ${JSON.stringify(statuses)}`,
    );
    expect(failures).toEqual([]);

    expect((await fetch(`${server.base}/healthz`)).status).toBe(200);
    const ok = await fetchPostOrder(server.base, {
      customerId: 'after-fuzz',
      currency: 'EUR',
      items: [{ sku: 'A', quantity: 1, unitPrice: 1 }],
    });
    expect(ok.status).toBe(201);
    const polluted = ({} as Record<string, unknown>).polluted ?? ({} as Record<string, unknown>).admin;
    expect(polluted).toBeUndefined();
  });
});
