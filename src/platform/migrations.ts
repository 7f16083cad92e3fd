/**
 * Schema migrations through node-pg-migrate. The advisory lock waits (rather than failing), so
 * any number of pods may run `orders migrate up` at once: one migrates, the others then find
 * nothing to do. Only the files shipped in `migrations/` are ever applied.
 */
import { readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import type { Logger } from 'pino';
import type { Queryable } from './db.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));
export const MIGRATIONS_TABLE = 'pgmigrations';

/** The migration names shipped with this build, in order (file names without extension). */
export function shippedMigrations(dir = MIGRATIONS_DIR): string[] {
  return readdirSync(dir)
    .filter((f) => /^\d+_.+\.(sql|js)$/.test(f))
    .sort()
    .map((f) => basename(f, extname(f)));
}

export interface MigrateOptions {
  databaseUrl: string;
  direction: 'up' | 'down';
  count?: number;
  logger: Logger;
}

export async function migrate(options: MigrateOptions): Promise<string[]> {
  const ran = await runner({
    databaseUrl: options.databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: options.direction,
    count: options.count ?? (options.direction === 'up' ? Number.POSITIVE_INFINITY : 1),
    migrationsTable: MIGRATIONS_TABLE,
    advisoryLockMode: 'wait',
    singleTransaction: true,
    checkOrder: true,
    ignorePattern: '(\\..*)|(.*\\.d\\.ts)|(.*\\.map)',
    logger: {
      debug: (msg: string) => options.logger.debug(msg),
      info: (msg: string) => options.logger.debug(msg),
      warn: (msg: string) => options.logger.warn(msg),
      error: (msg: string) => options.logger.error(msg),
    },
  });
  return ran.map((m) => m.name);
}

export interface MigrationStatus {
  name: string;
  appliedAt: Date | null;
}

/** Applied names from the migrations table; an empty list when it does not exist yet. */
export async function appliedMigrations(db: Queryable, options: { signal?: AbortSignal } = {}) {
  const exists = await db.query<{ t: string | null }>(
    `SELECT to_regclass($1) AS t`,
    [MIGRATIONS_TABLE],
    options,
  );
  if (!exists.rows[0]?.t) return new Map<string, Date>();
  const result = await db.query<{ name: string; run_on: Date }>(
    `SELECT name, run_on FROM ${MIGRATIONS_TABLE} ORDER BY run_on, id`,
    undefined,
    options,
  );
  return new Map(result.rows.map((r) => [r.name, r.run_on]));
}

export async function migrationStatus(db: Queryable): Promise<MigrationStatus[]> {
  const applied = await appliedMigrations(db);
  return shippedMigrations().map((name) => ({ name, appliedAt: applied.get(name) ?? null }));
}

/** True when every shipped migration has been applied: what /readyz calls "schema current". */
export async function isSchemaCurrent(db: Queryable, options: { signal?: AbortSignal } = {}) {
  const applied = await appliedMigrations(db, options);
  return shippedMigrations().every((name) => applied.has(name));
}

/** Writes an empty SQL migration with up/down sections; returns its path. */
export async function createMigration(name: string, dir = MIGRATIONS_DIR): Promise<string> {
  const slug = name
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  if (!slug) throw new Error('migration name must contain letters or digits');
  const path = join(dir, `${Date.now()}_${slug}.sql`);
  await writeFile(path, '-- Up Migration\n\n-- Down Migration\n', { flag: 'wx' });
  return path;
}
