/**
 * What the operator commands over the database (`orders events`, `orders inbox`) share: the
 * configuration, a logger on stderr at warn (stdout carries the table or the JSON a script
 * parses), the configured PostgreSQL server (never the embedded one), released when done.
 */
import { loadConfig } from '../config.js';
import type { Db } from '../platform/db.js';
import { createLogger } from '../platform/logger.js';
import { createResourceStack } from '../platform/shutdown.js';
import { openDatabase } from './runtime.js';

export async function withOperatorDatabase<T>(
  command: string,
  applicationName: string,
  use: (db: Db) => Promise<T>,
): Promise<T> {
  const config = loadConfig();
  // Logs (pool warnings) go to stderr: stdout carries the table or the JSON a script parses.
  const logger = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL, {
    destination: process.stderr,
  });
  const resources = createResourceStack(logger);
  try {
    const { db } = await openDatabase(config, logger, resources, {
      allowEmbedded: false,
      command,
      applicationName,
    });
    return await use(db);
  } finally {
    await resources.release();
  }
}
