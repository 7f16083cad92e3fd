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
    expect(loadConfig({ PORT: '', DATABASE_URL: '' }).PORT).toBe(8080);
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

  it('rejects a backoff maximum below the base', () => {
    expect(() => loadConfig({ WORKER_BACKOFF_BASE_MS: '5000', WORKER_BACKOFF_MAX_MS: '100' })).toThrow(
      /WORKER_BACKOFF_MAX_MS/,
    );
  });
});
