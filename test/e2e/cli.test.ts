import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, runOrders } from '../helpers/process.js';

describe('orders CLI', () => {
  it('prints help for every command', async () => {
    for (const args of [
      ['--help'],
      ['serve', '--help'],
      ['migrate', 'up', '--help'],
      ['healthcheck', '--help'],
    ]) {
      const r = await runOrders(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toContain('Usage: orders');
    }
  });

  it('exits 2 naming the flag on bad usage', async () => {
    const r = await runOrders(['serve', '--port', 'eighty']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--port');
    expect((await runOrders(['serve', '--bogus'])).code).toBe(2);
    expect((await runOrders(['nonsense'])).code).toBe(2);
    // No command at all: help on stderr, exit 2; asked-for help exits 0.
    const bare = await runOrders([]);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('Usage: orders');
    expect((await runOrders(['migrate'])).code).toBe(2);
    expect((await runOrders(['help', 'serve'])).code).toBe(0);
  });

  it('exits 2 naming every invalid variable at once, without leaking secrets', async () => {
    const r = await runOrders(['serve'], {
      PORT: 'x',
      DB_POOL_MAX: '-1',
      DATABASE_URL: 'mysql://admin:hunter2@db/x',
    });
    expect(r.code).toBe(2);
    for (const name of ['PORT', 'DB_POOL_MAX', 'DATABASE_URL']) expect(r.stderr).toContain(name);
    expect(r.stderr + r.stdout).not.toContain('hunter2');
  });

  it('never falls back to the embedded database: an empty DATABASE_URL, or none in production, exits 2', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'orders-no-fallback-'));
    try {
      const empty = await runOrders(['serve', '--port', String(await freePort())], {
        DATABASE_URL: '',
        ORDERS_DATA_DIR: dataDir,
      });
      expect(empty.code).toBe(2);
      expect(empty.stderr).toMatch(/DATABASE_URL: set but empty/);
      const production = await runOrders(['serve', '--port', String(await freePort())], {
        NODE_ENV: 'production',
        ORDERS_DATA_DIR: dataDir,
      });
      expect(production.code).toBe(2);
      expect(production.stderr).toMatch(/DATABASE_URL is not set and NODE_ENV=production/);
      // Nothing was started: no embedded database files were written.
      expect(readdirSync(dataDir)).toEqual([]);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses worker and migrate without a database URL (exit 2)', async () => {
    const migrate = await runOrders(['migrate', 'up']);
    expect(migrate.code).toBe(2);
    expect(migrate.stderr).toMatch(/DATABASE_URL/);
    const worker = await runOrders(['worker']);
    expect(worker.code).toBe(2);
    expect(worker.stderr).toMatch(/DATABASE_URL/);
  });

  it('healthcheck exits 1 within its timeout against a closed port', async () => {
    const port = await freePort();
    const started = Date.now();
    const r = await runOrders([
      'healthcheck',
      '--url',
      `http://127.0.0.1:${port}/readyz`,
      '--timeout',
      '1000',
    ]);
    expect(r.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(5_000);
    const bad = await runOrders(['healthcheck', '--url', 'ftp://x']);
    expect(bad.code).toBe(2);
  });

  it('prints the OpenAPI document as JSON and YAML', async () => {
    const json = await runOrders(['openapi']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout).openapi).toBe('3.1.0');
    const yaml = await runOrders(['openapi', '--format', 'yaml']);
    expect(yaml.code).toBe(0);
    expect(yaml.stdout).toContain('openapi: 3.1.0');
    expect((await runOrders(['openapi', '--format', 'xml'])).code).toBe(2);
  });
});
