/**
 * infoFlat writes the access log's line without pino's generic path: it must be byte for byte
 * the line `logger.info(record, msg)` writes, masking included, for every kind of value the
 * access log sends, on a child with bindings (the request's id, the trace ids) and at any level.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, type FlatRecord, infoFlat, isoTime } from '../../src/platform/logger.js';

function capture(level = 'info') {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { logger: createLogger(level, { destination, name: 'orders-test' }), lines };
}

const RECORDS: FlatRecord[] = [
  {
    method: 'GET',
    route: '/orders/:id',
    url: '/orders/0190c0de-0000-7000-8000-000000000000',
    statusCode: 200,
    durationMs: 1.23,
    sub: undefined,
  },
  { method: 'POST', route: '/orders', url: '/orders', statusCode: 201, durationMs: 12, sub: 'customer-7' },
  // What a hostile client controls: the URL (quotes, backslashes, control and non-ASCII characters,
  // credentials in the query) and, through its token, the subject.
  {
    method: 'GET',
    route: 'unmatched',
    url: '/x?password=SECRET&q="\\\u0001é☃\u2028',
    statusCode: 404,
    durationMs: 0,
    sub: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl',
  },
  { method: 'GET', route: '/x', url: 'https://user:SECRET@host/', statusCode: 500, durationMs: Number.NaN },
  { method: 'DELETE', route: '/y', url: '/y', statusCode: 204, durationMs: Number.POSITIVE_INFINITY },
];

/** The two lines of one millisecond: isoTime is formatted once per millisecond. */
function bothWays(logger: ReturnType<typeof capture>['logger'], lines: string[], record: FlatRecord) {
  for (;;) {
    const before = lines.length;
    const ms = Date.now();
    logger.info(record, 'request completed');
    infoFlat(logger, record, 'request completed');
    if (Date.now() === ms) return lines.slice(before);
  }
}

describe('infoFlat', () => {
  it("writes logger.info's very line, masking included", () => {
    const { logger, lines } = capture();
    const child = logger.child({ requestId: 'req-1' }).child({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736' });
    for (const record of RECORDS) {
      for (const target of [logger, child]) {
        const [generic, flat] = bothWays(target, lines, record);
        expect(flat).toBe(generic);
      }
    }
    const text = lines.join('');
    expect(text).not.toContain('SECRET');
    expect(text).not.toContain('c2lnbmF0dXJl');
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({ requestId: 'req-1', traceId: expect.any(String) });
  });

  it('masks credentials in child bindings as the generic path does', () => {
    const { logger, lines } = capture();
    const child = logger.child({ requestId: 'token=SECRET' });
    const [generic, flat] = bothWays(child, lines, RECORDS[0]!);
    expect(flat).toBe(generic);
    expect(flat).not.toContain('SECRET');
  });

  it('writes the same line for a short value seen before, and when there are many', () => {
    const { logger, lines } = capture();
    // Short values are remembered (masked, quoted) up to a bound, then forgotten: all give the same line.
    for (let i = 0; i < 1_200; i++) {
      const record = { ...RECORDS[1]!, sub: i % 3 === 0 ? `token=SECRET${i}` : `customer-${i % 700}` };
      for (let pass = 0; pass < 2; pass++) {
        const [generic, flat] = bothWays(logger, lines, record);
        expect(flat).toBe(generic);
      }
    }
    expect(lines.join('')).not.toContain('SECRET');
  });

  it('writes nothing above info, as logger.info', () => {
    const { logger, lines } = capture('warn');
    infoFlat(logger, RECORDS[0]!, 'request completed');
    logger.info(RECORDS[0]!, 'request completed');
    expect(lines).toEqual([]);
  });
});

describe('isoTime', () => {
  it("is pino's isoTime for every millisecond, across minutes, days, years and leap days", () => {
    const instants = [
      Date.UTC(2026, 11, 6, 10, 23, 59, 999),
      Date.UTC(2026, 11, 6, 10, 24, 0, 0),
      Date.UTC(2024, 1, 29, 23, 59, 59, 995),
      Date.UTC(1999, 11, 31, 23, 59, 59, 990),
      Date.UTC(1969, 11, 31, 23, 59, 59, 990),
      0,
      Date.UTC(9999, 11, 31, 23, 59, 59, 990),
      Date.UTC(10000, 0, 1, 0, 0, 0, 0),
      Date.UTC(-1, 0, 1, 0, 0, 0, 0),
    ];
    for (const start of instants) {
      // In order, as a clock goes (each minute's prefix is reused), then back (a clock stepped back).
      const run = Array.from({ length: 30 }, (_, i) => start + i * 1);
      for (const now of [...run, ...run.reverse(), start + 61_000, start]) {
        expect(isoTime(now), new Date(now).toISOString()).toBe(`,"time":"${new Date(now).toISOString()}"`);
      }
    }
    for (let i = 0; i < 20_000; i++) {
      const now = Math.floor(Math.random() * 4_102_444_800_000);
      expect(isoTime(now)).toBe(`,"time":"${new Date(now).toISOString()}"`);
    }
  });
});
