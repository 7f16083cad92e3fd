import { describe, expect, it } from 'vitest';
import { canonicalJson, parseIdempotencyKey, requestFingerprint } from '../../src/orders/idempotency.js';
import { AppError } from '../../src/platform/errors.js';

describe('parseIdempotencyKey', () => {
  it('accepts the bare and the structured-field form as the same key', () => {
    expect(parseIdempotencyKey('abc-123')).toBe('abc-123');
    expect(parseIdempotencyKey('"abc-123"')).toBe('abc-123');
    expect(parseIdempotencyKey('  "abc-123"  ')).toBe('abc-123');
  });

  it('unescapes sf-string escapes', () => {
    expect(parseIdempotencyKey('"a\\"b\\\\c"')).toBe('a"b\\c');
  });

  it('returns undefined when the header is absent', () => {
    expect(parseIdempotencyKey(undefined)).toBeUndefined();
  });

  it.each([
    ['empty', ''],
    ['empty quoted', '""'],
    ['space inside', 'a b'],
    ['non-ASCII', 'clé'],
    ['control char', 'a\u0001b'],
    ['too long', 'k'.repeat(256)],
    ['unterminated quote', '"abc'],
    ['bad escape', '"a\\nb"'],
  ])('rejects %s with validation_failed', (_name, value) => {
    try {
      parseIdempotencyKey(value);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(AppError);
      expect((e as AppError).code).toBe('validation_failed');
    }
  });

  it('accepts 255 characters and rejects repeated headers', () => {
    expect(parseIdempotencyKey('k'.repeat(255))).toHaveLength(255);
    expect(() => parseIdempotencyKey(['a', 'b'])).toThrow(AppError);
  });
});

describe('fingerprint', () => {
  it('ignores key order and whitespace', () => {
    const a = JSON.parse('{"b":1,"a":{"y":[1,{"q":2,"p":3}],"x":null}}');
    const b = JSON.parse('{ "a" : { "x" : null, "y" : [ 1, { "p": 3, "q": 2 } ] }, "b" : 1 }');
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(requestFingerprint('POST', '/orders', a)).toBe(requestFingerprint('post', '/orders', b));
  });

  it('changes with the body, the method and the path; array order matters', () => {
    const base = requestFingerprint('POST', '/orders', { items: [1, 2] });
    expect(requestFingerprint('POST', '/orders', { items: [2, 1] })).not.toBe(base);
    expect(requestFingerprint('PUT', '/orders', { items: [1, 2] })).not.toBe(base);
    expect(requestFingerprint('POST', '/other', { items: [1, 2] })).not.toBe(base);
  });
});
