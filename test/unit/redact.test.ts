/**
 * Credential redaction: every form the contract names (URL userinfo even where a URL parser gives
 * up, `password=` parameters, NATS tokens, Authorization and Cookie values), in linear time.
 */
import { describe, expect, it } from 'vitest';
import { describeFailure } from '../../src/platform/failures.js';
import { redactFields, redactText, redactUrl } from '../../src/platform/redact.js';

describe('redactText: URL userinfo', () => {
  it.each([
    [
      'a / in the password (new URL rejects it)',
      'postgres://app:pa/SECRET@db:5432/orders',
      'postgres://app:***@db:5432/orders',
    ],
    ['an @ in the password', 'postgres://app:p@SECRET@db/orders', 'postgres://app:***@db/orders'],
    ['a : in the password', 'postgres://app:pa:SECRET@db/orders', 'postgres://app:***@db/orders'],
    ['a # in the password', 'postgres://app:pa#SECRET@db/orders', 'postgres://app:***@db/orders'],
    ['? and / together', 'postgres://app:a?b/SECRET@db/orders', 'postgres://app:***@db/orders'],
    [
      'a percent-encoded password',
      'postgres://app:SECRET%40x@db:5432/orders',
      'postgres://app:***@db:5432/orders',
    ],
    ['an empty user', 'nats://:SECRET@nats:4222', 'nats://:***@nats:4222'],
    ['a NATS token', 'nats://SECRETTOKEN@nats:4222', 'nats://***@nats:4222'],
    ['a tls:// NATS token', 'tls://SECRETTOKEN@nats:4222', 'tls://***@nats:4222'],
    ['a token in an https URL', 'https://SECRET@otel.example.com:4318', 'https://***@otel.example.com:4318'],
    [
      'a NATS server list',
      'nats://u:SECRET1@h1:4222,nats://SECRET2@h2:4222,tls://u:SECRET3@h3',
      'nats://u:***@h1:4222,nats://***@h2:4222,tls://u:***@h3',
    ],
    [
      'URLs inside a sentence',
      'connect to "postgres://app:SECRET@db/orders" failed; retrying nats://SECRET@n:4222.',
      'connect to "postgres://app:***@db/orders" failed; retrying nats://***@n:4222.',
    ],
    ['a URL inside a password', 'postgres://app:x://SECRET@db/orders', 'postgres://app:***@db/orders'],
  ])('masks %s', (_, input, expected) => {
    expect(redactText(input)).toBe(expected);
    expect(redactUrl(input)).toBe(expected);
  });

  it('keeps what holds no credential', () => {
    for (const text of [
      'postgres://app@db/orders',
      'postgresql://db:5432/orders?sslmode=require',
      'nats://127.0.0.1:4222,nats://10.0.0.2:4222',
      'https://otel.example.com:4318/v1/traces',
      'mail alice@example.com about /orders?limit=10&status=pending',
      'ratio a=b, c = d; ://nothing',
      '',
    ]) {
      expect(redactText(text)).toBe(text);
    }
  });

  it('treats a whole config value as one URL, spaces included', () => {
    expect(redactUrl('postgres://app:pa SECRET@db/orders')).toBe('postgres://app:***@db/orders');
  });
});

describe('redactText: password parameters', () => {
  it.each([
    ['?password=', 'postgres://db/orders?password=SECRET', 'postgres://db/orders?password=***'],
    [
      '&password= between other parameters',
      'postgres://db/orders?user=app&password=SECRET&sslmode=require',
      'postgres://db/orders?user=app&password=***&sslmode=require',
    ],
    ['sslpassword=', 'postgres://db/o?sslpassword=SECRET#x', 'postgres://db/o?sslpassword=***#x'],
    ['key=value connection strings', 'host=db password=SECRET user=app', 'host=db password=*** user=app'],
    ['a quoted value with spaces', "password='it is SECRET' host=db", 'password=*** host=db'],
    ['a quoted value with an escaped quote', "password='it\\'s SECRET' host=db", 'password=*** host=db'],
    ['PASSWORD in capitals', 'PASSWORD=SECRET', 'PASSWORD=***'],
    ['an & inside a connection-string password', 'password=a&SECRET host=db', 'password=*** host=db'],
    ['access_token=', '/orders?access_token=SECRET&limit=5', '/orders?access_token=***&limit=5'],
  ])('masks %s', (_, input, expected) => {
    expect(redactText(input)).toBe(expected);
  });
});

describe('redactText: headers and tokens in text', () => {
  const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJTRUNSRVQifQ.SECRETsig-_x';

  it.each([
    ['Authorization: Bearer', `Authorization: Bearer ${jwt}`, 'Authorization: [redacted]'],
    [
      'a lower-case header in a dump',
      'authorization: Basic SECRET==\nhost: x',
      'authorization: [redacted]\nhost: x',
    ],
    ['Proxy-Authorization', 'Proxy-Authorization: Basic SECRET', 'Proxy-Authorization: [redacted]'],
    ['Cookie', 'cookie: session=SECRET; theme=dark', 'cookie: [redacted]'],
    ['Set-Cookie', 'Set-Cookie: sid=SECRET; HttpOnly', 'Set-Cookie: [redacted]'],
    [
      'headers as JSON',
      '{"authorization":"Bearer SECRET","cookie":"a=SECRET","accept":"*/*"}',
      '{"authorization":"[redacted]","cookie":"[redacted]","accept":"*/*"}',
    ],
    ['a bare JWT', `token ${jwt} rejected`, 'token [redacted] rejected'],
  ])('masks %s', (_, input, expected) => {
    expect(redactText(input)).toBe(expected);
  });

  it('leaves prose about headers alone', () => {
    const text = 'missing Authorization header; cookies are not used';
    expect(redactText(text)).toBe(text);
  });
});

describe('redaction cost', () => {
  // The regex it replaces backtracked quadratically: 40 KB of `a.a.a…` took 336 ms (1.1 s on a busy
  // machine). Every input below is linear now (well under 10 ms each); the bound is generous.
  const inputs: Record<string, string> = {
    'a.a.…://x': `${'a.'.repeat(20_000)}://x`,
    'a://a://…': 'a://'.repeat(10_000),
    'x://@@@…': `x://${'@'.repeat(40_000)}`,
    'a,a://…': 'a,a://'.repeat(7_000),
    'password=…': 'password='.repeat(4_500),
    "password='…": "password='\\".repeat(4_000),
    'aaaa…=': `${'a'.repeat(40_000)}=`,
    'authorization:…': 'authorization:'.repeat(3_000),
    'eyJ.…': 'eyJ.'.repeat(10_000),
    'u:p@h …': 'x://u:p@h '.repeat(4_000),
  };
  it.each(Object.entries(inputs))('redacts 40 KB of %s in linear time', (_, input) => {
    const started = performance.now();
    redactText(input);
    redactUrl(input);
    expect(performance.now() - started).toBeLessThan(150);
  });
});

describe('redactFields', () => {
  it('masks credentials in any string field and credential-named fields, without touching the input', () => {
    const input = {
      endpoint: 'https://user:SECRET@otel:4318',
      nested: { servers: ['nats://SECRET@n1', 'nats://n2'], count: 2 },
      headers: { authorization: 'Bearer SECRET', Cookie: 'sid=SECRET', accept: 'application/json' },
      clientSecret: 'SECRET',
      url: new URL('https://u:SECRET@example.com/x'),
      plain: 'nothing here',
    };
    const snapshot = JSON.stringify(input);
    const out = redactFields(input);
    expect(JSON.stringify(out)).not.toContain('SECRET');
    expect(out).toMatchObject({
      endpoint: 'https://user:***@otel:4318',
      nested: { servers: ['nats://***@n1', 'nats://n2'], count: 2 },
      headers: { authorization: '[redacted]', Cookie: '[redacted]', accept: 'application/json' },
      clientSecret: '[redacted]',
      url: 'https://u:***@example.com/x',
      plain: 'nothing here',
    });
    expect(JSON.stringify(input)).toBe(snapshot);
  });

  it('returns the same object when nothing needs masking (no copy on the hot path)', () => {
    const input = { method: 'GET', route: '/orders', statusCode: 200, nested: { a: [1, 'b'] } };
    expect(redactFields(input)).toBe(input);
  });

  it('survives cycles and never hands back an unredacted object, however deep', () => {
    const a: Record<string, unknown> = { url: 'nats://SECRET@n' };
    a.self = a;
    expect(JSON.stringify(redactFields(a))).not.toContain('SECRET');
  });
});

describe('describeFailure (stored last_error)', () => {
  it('never stores a NATS token or an unparseable password', () => {
    const nats = new Error('cannot connect to NATS at nats://SECRETTOKEN@nats:4222: connection refused');
    expect(describeFailure(nats)).toBe(
      'Error: cannot connect to NATS at nats://***@nats:4222: connection refused',
    );
    const pg = new Error('bad url postgres://app:pa/SECRET@db/orders?password=SECRET2');
    expect(describeFailure(pg)).not.toMatch(/SECRET/);
  });
});
