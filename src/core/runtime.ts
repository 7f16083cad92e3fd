/**
 * Opening the database for a process: the configured server, or (for `serve` only) the embedded
 * development database, migrated in-process. Shared by every command that needs a pool.
 */
import { UsageError } from '../commands/report.js';
import type { Config } from '../config.js';
import { createDb, type Db } from './db.js';
import type { ResourceStack } from './lifecycle.js';
import type { Logger } from './logger.js';
import type { Telemetry } from './telemetry.js';

export interface OpenedDatabase {
  db: Db;
  url: string;
  embedded: boolean;
}

export async function openDatabase(
  config: Config,
  logger: Logger,
  resources: ResourceStack,
  options: { allowEmbedded: boolean; command: string; applicationName: string; telemetry?: Telemetry },
): Promise<OpenedDatabase> {
  let url = config.DATABASE_URL;
  let max = config.DB_POOL_MAX;
  let embedded = false;
  if (!url) {
    if (!options.allowEmbedded) {
      throw new UsageError(
        `DATABASE_URL is not set: \`orders ${options.command}\` needs a PostgreSQL server ` +
          '(postgres://user:password@host:5432/db). Only `orders serve` falls back to the embedded database.',
      );
    }
    const { startEmbeddedPostgres } = await import('./embedded.js');
    const { migrate } = await import('./migrations.js');
    logger.warn(
      { dataDir: config.ORDERS_DATA_DIR },
      'DATABASE_URL is not set: using the embedded PGlite database in ORDERS_DATA_DIR. ' +
        'It is for development only (one connection, serialised transactions). Set DATABASE_URL in production.',
    );
    const instance = await startEmbeddedPostgres({ dataDir: config.ORDERS_DATA_DIR, maxConnections: 4 });
    resources.push('embedded database', () => instance.stop());
    await migrate({ databaseUrl: instance.url, direction: 'up', logger });
    url = instance.url;
    // PGlite is one session: a single pooled connection is the only honest pool size.
    max = 1;
    embedded = true;
  }
  const db = createDb({
    connectionString: url,
    max,
    logger,
    applicationName: options.applicationName,
    telemetry: options.telemetry,
  });
  resources.push('database pool', () => db.close());
  return { db, url, embedded };
}
