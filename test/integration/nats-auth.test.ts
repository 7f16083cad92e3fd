/**
 * NATS_URL credentials reach the server: user and password, a token, TLS. The NATS client ignores
 * userinfo in a server URL, so the publisher passes it as connection options, and never writes it
 * into a log line or an error. Each case runs its own nats-server (the shared one has no auth).
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNatsPublisher, type EventPublisher } from '../../src/messaging/nats-publisher.js';
import type { OutboxEvent } from '../../src/messaging/outbox.js';
import { describeFailure, TransientError } from '../../src/platform/failures.js';
import { createLogger } from '../../src/platform/logger.js';
import {
  NATS_SERVER_BIN,
  type NatsServer,
  NEEDS_NATS_SERVER,
  startNatsServer,
} from '../helpers/nats-server.js';

const run = randomBytes(4).toString('hex');
const event: OutboxEvent = {
  id: '0192f1c6-0000-7000-8000-00000000b001',
  type: 'OrderCreated',
  aggregateType: 'order',
  aggregateId: '0192f1c6-aaaa-7000-8000-000000000001',
  payload: { id: '0192f1c6-aaaa-7000-8000-000000000001' },
  traceContext: null,
  attempts: 1,
  createdAt: new Date('2026-01-01T00:00:00Z'),
};

function capturingLogger() {
  let text = '';
  const destination = new Writable({
    write(chunk, _encoding, done) {
      text += chunk;
      done();
    },
  });
  return { logger: createLogger('debug', { destination }), text: () => text };
}

describe.skipIf(!NATS_SERVER_BIN)(`NATS credentials from NATS_URL (${NEEDS_NATS_SERVER})`, () => {
  // A password with every character a URL parser stumbles over, and a token.
  const password = 'pa/ss@wo:rd#SECRET';
  const token = `SECRETTOKEN${run}`;
  let withPassword: NatsServer;
  let withToken: NatsServer;
  const publishers: EventPublisher[] = [];

  beforeAll(async () => {
    [withPassword, withToken] = await Promise.all([
      startNatsServer(['--user', 'orders', '--pass', password]),
      startNatsServer(['--auth', token]),
    ]);
  });

  afterAll(async () => {
    await Promise.all(publishers.map((p) => p.close()));
    await Promise.all([withPassword?.stop(), withToken?.stop()]);
  });

  async function publishOnce(url: string) {
    const { logger, text } = capturingLogger();
    const publisher = createNatsPublisher({
      url,
      logger,
      streamName: `ORDERS_AUTH_TEST_${run}`,
      subjectPrefix: `test.${run}.auth`,
      publishTimeoutMs: 2_000,
    });
    publishers.push(publisher);
    let ack: { duplicate: boolean } | undefined;
    let error: Error | undefined;
    try {
      ack = await publisher.publish(event, { signal: AbortSignal.timeout(15_000) });
    } catch (e) {
      error = e as Error;
    }
    await publisher.close();
    return { ack, error, logs: text() };
  }

  it.each([
    [
      'a percent-encoded password',
      () => `nats://orders:${encodeURIComponent(password)}@${withPassword.hostPort}`,
    ],
    ['an unencoded password', () => `nats://orders:${password}@${withPassword.hostPort}`],
    ['a token', () => `nats://${token}@${withToken.hostPort}`],
    [
      'a token in the second server of a list',
      () => `nats://${withToken.hostPort},nats://${token}@${withToken.hostPort}`,
    ],
  ])('publishes with %s, and logs no credential', async (_, url) => {
    const { ack, error, logs } = await publishOnce(url());
    expect(error?.message).toBeUndefined();
    expect(ack).toEqual({ duplicate: expect.any(Boolean) });
    expect(logs).toContain('connected to NATS');
    expect(logs).not.toContain('SECRET');
  });

  it.each([
    ['a wrong password', () => `nats://orders:WRONG${password}@${withPassword.hostPort}`],
    ['a wrong token', () => `nats://WRONG${token}@${withToken.hostPort}`],
  ])('refuses %s with a retryable error that names no credential', async (_, url) => {
    const { error, logs } = await publishOnce(url());
    expect(error).toBeInstanceOf(TransientError);
    expect(error?.message).toMatch(/cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+/);
    expect(`${error?.message} ${logs}`).not.toContain('SECRET');
    // What the worker would store as the event's last_error.
    expect(describeFailure(error)).not.toContain('SECRET');
  });

  it('requires TLS for tls:// (it does not fall back to plain text)', async () => {
    const { error, logs } = await publishOnce(`tls://${token}@${withToken.hostPort}`);
    expect(error).toBeInstanceOf(TransientError);
    // Refused for want of TLS (this server has none), not reached in plain text.
    expect((error?.cause as Error | undefined)?.message).toMatch(/tls/i);
    expect(`${error?.message} ${logs}`).not.toContain('SECRET');
  });
});
