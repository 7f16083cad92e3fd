import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

describe('loadConfig', () => {
  it('applies every default of the contract', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      ORDERS_DATA_DIR: './.orders',
      PORT: 8080,
      HOST: '0.0.0.0',
      LOG_LEVEL: 'info',
      DB_POOL_MAX: 10,
      REQUEST_TIMEOUT_MS: 10_000,
      SHUTDOWN_DELAY_MS: 0,
      SHUTDOWN_TIMEOUT_MS: 25_000,
      WORKER_ENABLED: true,
      WORKER_PORT: 8081,
      WORKER_CONCURRENCY: 4,
      WORKER_BATCH_SIZE: 50,
      WORKER_MAX_ATTEMPTS: 10,
      WORKER_BACKOFF_BASE_MS: 1000,
      WORKER_BACKOFF_MAX_MS: 300_000,
      NOTIFY_FAILURE_RATE: 0,
      IDEMPOTENCY_TTL_HOURS: 24,
      OTEL_SERVICE_NAME: 'orders',
    });
    expect(c.DATABASE_URL).toBeUndefined();
    expect(c.NATS_URL).toBeUndefined();
  });

  it('parses values and lets overrides (flags) win over env', () => {
    const c = loadConfig(
      { PORT: '9000', WORKER_ENABLED: 'false', IDEMPOTENCY_TTL_HOURS: '0.5', NOTIFY_FAILURE_RATE: '0.25' },
      { PORT: '9100' },
    );
    expect(c.PORT).toBe(9100);
    expect(c.WORKER_ENABLED).toBe(false);
    expect(c.IDEMPOTENCY_TTL_HOURS).toBe(0.5);
    expect(c.NOTIFY_FAILURE_RATE).toBe(0.25);
  });

  it('treats empty strings as unset', () => {
    const c = loadConfig({ PORT: '', NATS_URL: '', OTEL_EXPORTER_OTLP_ENDPOINT: '' });
    expect(c.PORT).toBe(8080);
    expect(c.NATS_URL).toBeUndefined();
  });

  it('refuses a DATABASE_URL or MIGRATE_DATABASE_URL that is set but empty (an empty Secret key), naming it', () => {
    for (const name of ['DATABASE_URL', 'MIGRATE_DATABASE_URL']) {
      let error: unknown;
      try {
        loadConfig({ [name]: '', PORT: '' });
      } catch (e) {
        error = e;
      }
      expect(error, name).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).issues).toEqual([
        expect.stringMatching(new RegExp(`^${name}: set but empty`)),
      ]);
    }
    // Unset stays the development default.
    expect(loadConfig({}).DATABASE_URL).toBeUndefined();
  });

  it('reads NODE_ENV', () => {
    expect(loadConfig({ NODE_ENV: 'production' }).NODE_ENV).toBe('production');
    expect(loadConfig({}).NODE_ENV).toBeUndefined();
  });

  it('reports every invalid variable at once, naming each', () => {
    let error: unknown;
    try {
      loadConfig({
        PORT: '80a',
        DB_POOL_MAX: '0',
        LOG_LEVEL: 'loud',
        WORKER_ENABLED: 'maybe',
        IDEMPOTENCY_TTL_HOURS: '0',
        NOTIFY_FAILURE_RATE: '1.5',
        DATABASE_URL: 'mysql://x',
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const issues = (error as ConfigError).issues.join('\n');
    for (const name of [
      'PORT',
      'DB_POOL_MAX',
      'LOG_LEVEL',
      'WORKER_ENABLED',
      'IDEMPOTENCY_TTL_HOURS',
      'NOTIFY_FAILURE_RATE',
      'DATABASE_URL',
    ]) {
      expect(issues).toContain(`${name}:`);
    }
    expect((error as ConfigError).issues).toHaveLength(7);
  });

  it('never echoes a database password in an error', () => {
    try {
      loadConfig({ DATABASE_URL: 'mysql://admin:hunter2@db:3306/x' });
      expect.unreachable();
    } catch (e) {
      expect(String((e as Error).message)).not.toContain('hunter2');
      expect(String((e as Error).message)).toContain('DATABASE_URL');
    }
  });

  it.each([
    [
      'an unencoded / in the password',
      'DATABASE_URL',
      'postgres://app:pa/SECRET@db:5432/orders',
      'postgres://app:***@db:5432/orders',
    ],
    [
      'an unencoded # in the password',
      'DATABASE_URL',
      'postgres://app:pa#SECRET@db/orders',
      'postgres://app:***@db/orders',
    ],
    [
      'a password= parameter',
      'DATABASE_URL',
      'mysql://db/orders?password=SECRET',
      'mysql://db/orders?password=***',
    ],
    ['a key=value connection string', 'DATABASE_URL', 'host=db password=SECRET', undefined],
    ['a bare password', 'MIGRATE_DATABASE_URL', 'SECRET', undefined],
    ['a NATS token with a space', 'NATS_URL', 'nats://SEC RET@nats:4222', 'nats://***@nats:4222'],
    [
      'userinfo in the OTLP endpoint',
      'OTEL_EXPORTER_OTLP_ENDPOINT',
      'https://u:pa/SECRET@otel:4318',
      'https://u:***@otel:4318',
    ],
  ])('never echoes a credential in an error: %s', (_, name, value, shown) => {
    let error: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toContain(`${name}:`);
    expect(message).not.toMatch(/SECRET|SEC RET/);
    if (shown) expect(message).toContain(JSON.stringify(shown));
  });

  it('says to percent-encode when a postgres URL does not parse', () => {
    expect(() => loadConfig({ DATABASE_URL: 'postgres://app:pa/ss@db/orders' })).toThrow(/percent-encode/);
  });

  it('rejects a backoff maximum below the base', () => {
    expect(() => loadConfig({ WORKER_BACKOFF_BASE_MS: '5000', WORKER_BACKOFF_MAX_MS: '100' })).toThrow(
      /WORKER_BACKOFF_MAX_MS/,
    );
  });
});
