/** `orders migrate up | down [N] | status | create NAME` — connects with MIGRATE_DATABASE_URL. */
import { loadConfig } from '../config.js';
import { createDb } from '../platform/db.js';
import { LOCK_NOT_AVAILABLE } from '../platform/errors.js';
import { createLogger } from '../platform/logger.js';
import { createMigration, migrate, migrationStatus } from '../platform/migrations.js';
import { UsageError } from './report.js';

type Options =
  | { action: 'up' }
  | { action: 'down'; count: number }
  | { action: 'status' }
  | { action: 'create'; name: string };

export async function run(options: Options): Promise<number> {
  if (options.action === 'create') {
    const path = await createMigration(options.name);
    process.stdout.write(`${path}\n`);
    return 0;
  }
  const config = loadConfig();
  const logger = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL, {
    destination: process.stderr,
  });
  const databaseUrl = config.MIGRATE_DATABASE_URL ?? config.DATABASE_URL;
  if (!databaseUrl) {
    throw new UsageError(
      'MIGRATE_DATABASE_URL or DATABASE_URL must be set to a postgres:// URL: `orders migrate` does not run ' +
        'against the embedded database (`orders serve` migrates that one itself).',
    );
  }
  if (options.action === 'status') {
    const db = createDb({ connectionString: databaseUrl, max: 1, logger, applicationName: 'orders-migrate' });
    try {
      const status = await migrationStatus(db);
      for (const m of status) {
        process.stdout.write(
          `${m.appliedAt ? 'applied' : 'pending'}  ${m.name}${m.appliedAt ? `  (${m.appliedAt.toISOString()})` : ''}\n`,
        );
      }
      const pending = status.filter((m) => !m.appliedAt).length;
      process.stdout.write(pending === 0 ? 'schema is current\n' : `${pending} pending\n`);
    } finally {
      await db.close();
    }
    return 0;
  }
  const ran = await migrate({
    databaseUrl,
    direction: options.action,
    count: options.action === 'down' ? options.count : undefined,
    logger,
  }).catch((error: unknown) => {
    throw (error as { code?: unknown }).code === LOCK_NOT_AVAILABLE ? lockTimeout(error as Error) : error;
  });
  const verb = options.action === 'up' ? 'applied' : 'reverted';
  process.stdout.write(
    ran.length === 0
      ? 'no migrations to run; schema is current\n'
      : `${verb} ${ran.length}: ${ran.join(', ')}\n`,
  );
  return 0;
}

/** What an operator does about a migration that gave up waiting for a table lock. */
function lockTimeout(cause: Error): Error {
  return Object.assign(
    new Error(
      `a migration gave up waiting for a table lock (${cause.message}), so that the service's queries ` +
        'queued behind it could go on; nothing was changed. A long transaction holds the table: find it in ' +
        'pg_stat_activity, then run `orders migrate` again (the migration Job retries by itself)',
      { cause },
    ),
    { code: LOCK_NOT_AVAILABLE },
  );
}
