/** The bench databases: created fresh and migrated with the app under test, dropped at the end. */
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { registerCleanup } from './cleanup.js';
import { countPostgresBackendsOf } from './cpu.js';
import type { BenchOptions } from './options.js';
import { startProcess } from './processes.js';

function databaseUrl(base: string, name: string): string {
  const u = new URL(base);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, application_name: 'orders-bench' });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Creates database `name` next to BENCH_DATABASE_URL, runs `orders migrate up` on it, returns its URL. */
export async function createDatabase(
  options: Pick<BenchOptions, 'baseUrl' | 'keepDb' | 'app'>,
  name: string,
): Promise<string> {
  await withClient(options.baseUrl, (c) => c.query(`CREATE DATABASE "${name}"`));
  countPostgresBackendsOf(name);
  if (!options.keepDb) {
    registerCleanup(() =>
      withClient(options.baseUrl, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)),
    );
  }
  const url = databaseUrl(options.baseUrl, name);
  const migrate = startProcess(process.execPath, ['bin/orders.js', 'migrate', 'up'], {
    env: { ...process.env, DATABASE_URL: url, MIGRATE_DATABASE_URL: url, LOG_LEVEL: 'warn' },
    label: 'orders migrate up',
    cwd: options.app,
  });
  // ref: false: a migration that ends in time leaves no timer holding the bench open.
  const timeout = sleep(120_000, { code: 'timeout' as const }, { ref: false });
  const result = await Promise.race([migrate.exited, timeout]);
  if (result.code !== 0) {
    await migrate.stop();
    throw new Error(`orders migrate up failed (${result.code}): ${migrate.stderr().trim()}`);
  }
  return url;
}
