/**
 * What reaches a log line: credentials are masked in the message, in every field (however nested,
 * child bindings too) and in serialised errors with their causes.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/platform/logger.js';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: createLogger('info', { destination }), text: () => lines.join('\n'), lines };
}

describe('logger redaction', () => {
  it('masks a credential in an object field (the OTLP endpoint, a NATS server list)', () => {
    const { logger, text } = capture();
    logger.info({ endpoint: 'https://user:SECRET@otel.example:4318' }, 'OpenTelemetry tracing enabled');
    logger.info({ nats: ['nats://SECRETTOKEN@n1:4222', 'nats://u:SECRET@n2'] }, 'connected');
    logger.info({ deep: { er: { url: new URL('https://u:SECRET@example.com/') } } }, 'nested');
    expect(text()).not.toContain('SECRET');
    expect(text()).toContain('https://user:***@otel.example:4318');
    expect(text()).toContain('nats://***@n1:4222');
  });

  it('masks header values and credential-named fields', () => {
    const { logger, text } = capture();
    logger.info(
      {
        req: { headers: { authorization: 'Bearer SECRET', cookie: 'sid=SECRET', accept: '*/*' } },
        response: { headers: { 'set-cookie': ['sid=SECRET'] } },
        accessToken: 'SECRET',
        url: '/orders?access_token=SECRET&limit=5',
      },
      'incoming',
    );
    expect(text()).not.toContain('SECRET');
    expect(text()).toContain('/orders?access_token=***&limit=5');
    expect(text()).toContain('"accept":"*/*"');
  });

  it('masks the message, interpolated values and child bindings', () => {
    const { logger, text } = capture();
    logger.info('cannot reach %s', 'postgres://app:pa/SECRET@db/orders');
    logger.child({ upstream: 'nats://SECRETTOKEN@n' }).info('child line');
    logger.warn('header dump: Authorization: Bearer SECRET');
    expect(text()).not.toContain('SECRET');
  });

  it('masks errors, their causes and errors logged under another key', () => {
    const { logger, text } = capture();
    const cause = new Error('password=SECRET host=db rejected');
    const err = new Error('cannot connect to NATS at nats://SECRETTOKEN@n:4222', { cause });
    Object.assign(err, { server: 'tls://u:SECRET@n:4222' });
    logger.error({ err }, 'failed');
    logger.error({ error: new Error('bad postgres://app:SECRET@db') }, 'failed too');
    expect(text()).not.toContain('SECRET');
    expect(text()).toContain('nats://***@n:4222');
    expect(text()).toContain('bad postgres://app:***@db');
  });

  it('does not change the objects it is given', () => {
    const { logger } = capture();
    const fields = { endpoint: 'https://u:SECRET@h', headers: { authorization: 'Bearer SECRET' } };
    logger.info(fields, 'x');
    expect(fields).toEqual({ endpoint: 'https://u:SECRET@h', headers: { authorization: 'Bearer SECRET' } });
  });
});

describe('request logging through fastify', () => {
  it("masks credentials in the URL fastify's own lines log", async () => {
    const { default: Fastify } = await import('fastify');
    const { logger, text } = capture();
    const app = Fastify({ loggerInstance: logger });
    app.get('/x', async (request) => {
      request.log.info({ req: request }, 'seen');
      return {};
    });
    await app.inject({
      url: '/x?password=SECRET&access_token=SECRET2',
      headers: { authorization: 'Bearer SECRET3' },
    });
    await app.close();
    expect(text()).toContain('"url":"/x?password=***&access_token=***"');
    expect(text()).not.toContain('SECRET');
  });
});
