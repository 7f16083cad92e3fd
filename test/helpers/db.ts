/**
 * A fresh, migrated database for one test file: a new database on the shared server (so files
 * run in parallel), or an in-memory PGlite when no server is available.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { createDb, type Db } from '../../src/platform/db.js';
import { createLogger } from '../../src/platform/logger.js';
import { migrate } from '../../src/platform/migrations.js';

export interface TestDatabase {
  url: string;
  /** 'server' is a real PostgreSQL; 'pglite' is one embedded session (no real concurrency). */
  kind: 'server' | 'pglite';
  /** A pool on the database (size 1 on PGlite). */
  db: Db;
  drop(): Promise<void>;
}

export const testLogger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

export function serverUrl(): string | null {
  return inject('databaseServerUrl');
}

/** Why a test needs a real server, printed as its skip reason when there is none. */
export const NEEDS_SERVER =
  'needs a real multi-connection PostgreSQL (set TEST_DATABASE_URL); PGlite is one session';

export async function createTestDatabase(
  options: { migrate?: boolean; poolMax?: number } = {},
): Promise<TestDatabase> {
  const server = serverUrl();
  if (server) {
    const name = `orders_test_${randomBytes(6).toString('hex')}`;
    await adminQuery(server, `CREATE DATABASE ${name}`);
    const url = withDatabase(server, name);
    if (options.migrate !== false) await migrate({ databaseUrl: url, direction: 'up', logger: testLogger });
    const db = createDb({ connectionString: url, max: options.poolMax ?? 10, logger: testLogger });
    return {
      url,
      kind: 'server',
      db,
      async drop() {
        await db.close();
        await adminQuery(server, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      },
    };
  }
  const { startEmbeddedPostgres } = await import('../../src/platform/embedded.js');
  const embedded = await startEmbeddedPostgres({ maxConnections: 8 });
  if (options.migrate !== false)
    await migrate({ databaseUrl: embedded.url, direction: 'up', logger: testLogger });
  const db = createDb({ connectionString: embedded.url, max: 1, logger: testLogger });
  return {
    url: embedded.url,
    kind: 'pglite',
    db,
    async drop() {
      await db.close();
      await embedded.stop();
    },
  };
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export async function adminQuery(url: string, sql: string, values?: unknown[]) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql, values);
  } finally {
    await client.end();
  }
}
