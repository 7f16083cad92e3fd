import { describe, expect, it } from 'vitest';
import { AppError, isRetryable } from '../../src/platform/errors.js';
import { httpStatus, problemBody } from '../../src/platform/problem.js';
import { redactUrl } from '../../src/platform/redact.js';
import { toAppError } from '../../src/server/problem.js';

describe('toAppError', () => {
  it('keeps AppErrors and hides internals of anything else behind 500', () => {
    const own = new AppError('not_found', 'nope');
    expect(toAppError(own)).toBe(own);
    const mapped = toAppError(new Error('relation "orders" does not exist at character 15'));
    expect(mapped.code).toBe('internal');
    expect(problemBody(mapped, '/orders').detail).not.toContain('relation');
  });

  it('maps database outages to 503 with Retry-After', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const mapped = toAppError(refused);
    expect(httpStatus(mapped.code)).toBe(503);
    expect(mapped.retryAfterSeconds).toBeGreaterThan(0);
    expect(toAppError(Object.assign(new Error('terminating'), { code: '57P01' })).code).toBe('unavailable');
  });

  it("maps fastify's parser errors to the contract's codes", () => {
    expect(toAppError({ code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413, message: 'x' }).code).toBe(
      'payload_too_large',
    );
    expect(toAppError({ code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', statusCode: 415, message: 'x' }).code).toBe(
      'unsupported_media_type',
    );
    expect(toAppError(Object.assign(new SyntaxError('Unexpected token'), { statusCode: 400 })).code).toBe(
      'validation_failed',
    );
  });
});

describe('isRetryable', () => {
  it.each(['40001', '40P01', '57P01', '57P03', '08006', 'ECONNRESET', 'ECONNREFUSED'])(
    '%s is retryable',
    (code) => {
      expect(isRetryable(Object.assign(new Error('x'), { code }))).toBe(true);
    },
  );
  it.each(['23505', '42P01', '22P02'])('%s is permanent', (code) => {
    expect(isRetryable(Object.assign(new Error('x'), { code }))).toBe(false);
  });
  it('looks through causes', () => {
    expect(
      isRetryable(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: '57P01' }) })),
    ).toBe(true);
  });
});

describe('redactUrl', () => {
  it('hides passwords in connection strings', () => {
    expect(redactUrl('postgres://app:s3cr%40t@db:5432/orders')).toBe('postgres://app:***@db:5432/orders');
    expect(redactUrl('failed: postgresql://u:p@h/d and nats://a:b@n:4222')).toBe(
      'failed: postgresql://u:***@h/d and nats://a:***@n:4222',
    );
    expect(redactUrl('postgres://app@db/orders')).toBe('postgres://app@db/orders');
  });
});
