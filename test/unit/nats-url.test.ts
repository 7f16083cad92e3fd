/** NATS_URL → the NATS client's connection options: credentials out of the servers, TLS on for tls://. */
import { describe, expect, it } from 'vitest';
import { parseNatsUrl } from '../../src/messaging/nats-url.js';
import { UsageError } from '../../src/platform/errors.js';

describe('parseNatsUrl', () => {
  it.each([
    ['one server', 'nats://127.0.0.1:4222', { servers: ['nats://127.0.0.1:4222'] }],
    [
      'a list, spaces and a bare host:port',
      ' nats://a:4222 , b:4223,',
      { servers: ['nats://a:4222', 'nats://b:4223'] },
    ],
    [
      'user and password',
      'nats://orders:s3cret@n:4222',
      { servers: ['nats://n:4222'], user: 'orders', pass: 's3cret' },
    ],
    [
      'a percent-encoded password',
      'nats://orders:pa%2Fss%40w%3Ard%23@n:4222',
      { servers: ['nats://n:4222'], user: 'orders', pass: 'pa/ss@w:rd#' },
    ],
    [
      'an unencoded password (up to the last @)',
      'nats://orders:pa/ss@w:rd#@n:4222',
      { servers: ['nats://n:4222'], user: 'orders', pass: 'pa/ss@w:rd#' },
    ],
    ['a stray % taken literally', 'nats://u:100%@n', { servers: ['nats://n'], user: 'u', pass: '100%' }],
    ['a token', 'nats://s3cr3tT0ken@n:4222', { servers: ['nats://n:4222'], token: 's3cr3tT0ken' }],
    ['tls://', 'tls://u:p@n:4222', { servers: ['tls://n:4222'], user: 'u', pass: 'p', tls: {} }],
    [
      'credentials on some servers of a list',
      'nats://a:4222,nats://tok@b:4222,TLS://tok@c',
      { servers: ['nats://a:4222', 'nats://b:4222', 'tls://c'], token: 'tok', tls: {} },
    ],
    ['a trailing path', 'nats://u:p@n:4222/', { servers: ['nats://n:4222'], user: 'u', pass: 'p' }],
  ])('%s', (_, url, expected) => {
    expect(parseNatsUrl(url)).toEqual(expected);
  });

  it('refuses different credentials on different servers, and names none of them', () => {
    const parse = () => parseNatsUrl('nats://u:SECRET1@a,nats://u:SECRET2@b');
    expect(parse).toThrow(UsageError);
    expect(parse).toThrow(/different credentials/);
    expect(parse).not.toThrow(/SECRET/);
  });

  it('refuses a list without a server', () => {
    expect(() => parseNatsUrl(' , ')).toThrow(/no server/);
    expect(() => parseNatsUrl('nats://u:p@')).toThrow(/no host/);
  });
});
