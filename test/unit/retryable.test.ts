import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/platform/errors.js';
import {
  describeFailure,
  isRetryableFailure,
  PermanentError,
  TransientError,
} from '../../src/platform/failures.js';
import { createSimulatedNotifier } from '../../src/worker/notifier.js';

const withCode = (code: string, message = 'failed') => Object.assign(new Error(message), { code });

describe('isRetryableFailure', () => {
  it.each([
    ['serialization failure 40001', withCode('40001')],
    ['deadlock 40P01', withCode('40P01')],
    ['admin shutdown 57P01', withCode('57P01')],
    ['too many connections 53300', withCode('53300')],
    ['connection refused', withCode('ECONNREFUSED')],
    ['connection reset', withCode('ECONNRESET')],
    ['pg pool checkout timeout', new Error('timeout exceeded when trying to connect')],
    ['pg connection terminated', new Error('Connection terminated unexpectedly')],
    ['an explicit TransientError', new TransientError('provider down')],
    ['a TransientError as the cause', new Error('wrapped', { cause: new TransientError('x') })],
    ['a retryable SQLSTATE as the cause', new Error('wrapped', { cause: withCode('40001') })],
  ])('retries %s', (_name, error) => {
    expect(isRetryableFailure(error)).toBe(true);
  });

  it.each([
    ['an explicit PermanentError', new PermanentError('unknown type')],
    ['a unique violation 23505', withCode('23505')],
    ['a syntax error 42601', withCode('42601')],
    ['a bug (TypeError)', new TypeError("Cannot read properties of undefined (reading 'id')")],
    ['a plain Error', new Error('boom')],
    ['a validation AppError', new AppError('validation_failed', 'bad')],
    ['a non-Error value', 'just a string'],
    ['undefined', undefined],
  ])('dead-letters %s at once', (_name, error) => {
    expect(isRetryableFailure(error)).toBe(false);
  });

  it('lets PermanentError win over a retryable cause', () => {
    expect(isRetryableFailure(new PermanentError('no', { cause: withCode('40001') }))).toBe(false);
  });
});

describe('describeFailure', () => {
  it('is one bounded line with name, message and code, credentials redacted', () => {
    const error = withCode('ECONNREFUSED', 'connect to postgres://app:s3cret@db:5432/orders\nfailed');
    const text = describeFailure(error);
    expect(text).toBe('Error: connect to postgres://app:***@db:5432/orders failed (ECONNREFUSED)');
    expect(describeFailure(new Error('x'.repeat(5000)), 100)).toHaveLength(100);
  });
});

describe('simulated notifier', () => {
  const notification = { eventId: 'e', orderId: 'o', customerId: 'c', channel: 'email' };
  const signal = new AbortController().signal;

  it('never fails at rate 0 and always fails (retryably) at rate 1', async () => {
    await expect(
      createSimulatedNotifier({ failureRate: 0 }).send(notification, { signal }),
    ).resolves.toBeUndefined();
    const failing = createSimulatedNotifier({ failureRate: 1 });
    const error = await failing.send(notification, { signal }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransientError);
    expect(isRetryableFailure(error)).toBe(true);
  });

  it('fails when random() < rate', async () => {
    const values = [0.1, 0.5, 0.29, 0.3];
    const notifier = createSimulatedNotifier({ failureRate: 0.3, random: () => values.shift()! });
    const outcomes = [];
    for (let i = 0; i < 4; i++) {
      outcomes.push(
        await notifier.send(notification, { signal }).then(
          () => 'ok',
          () => 'fail',
        ),
      );
    }
    expect(outcomes).toEqual(['fail', 'ok', 'fail', 'ok']);
  });
});
