/**
 * The embedded PGlite database is for development only: `serve` uses it when DATABASE_URL is
 * unset, never in production (NODE_ENV=production, as the image sets) and never for a DATABASE_URL
 * that is set but empty (an empty Secret key). Both exit 2 naming the variable.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/commands/runtime.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { UsageError } from '../../src/platform/errors.js';
import { createLogger } from '../../src/platform/logger.js';
import { createResourceStack, type ResourceStack } from '../../src/platform/shutdown.js';

const logger = createLogger('silent');
const serve = { allowEmbedded: true, command: 'serve', applicationName: 'orders-test' };

describe('the embedded database fallback', () => {
  it('is refused in production, before anything is started', async () => {
    const started: string[] = [];
    const resources: ResourceStack = { ...createResourceStack(logger), push: (name) => started.push(name) };
    // (A private data directory: were the fallback taken, it would not land in the working tree.)
    const config = loadConfig({
      NODE_ENV: 'production',
      ORDERS_DATA_DIR: join(tmpdir(), `orders-fallback-${process.pid}`),
    });
    const opening = openDatabase(config, logger, resources, serve);
    await expect(opening).rejects.toBeInstanceOf(UsageError);
    await expect(opening).rejects.toThrow(/DATABASE_URL is not set.*NODE_ENV=production/);
    expect(started).toEqual([]);
  });

  it('is never chosen for a DATABASE_URL that is set but empty', () => {
    expect(() => loadConfig({ DATABASE_URL: '' })).toThrow(ConfigError);
    expect(() => loadConfig({ DATABASE_URL: '' })).toThrow(/DATABASE_URL: set but empty/);
  });

  it('still names the server for the commands that never fall back', async () => {
    const resources = createResourceStack(logger);
    const opening = openDatabase(loadConfig({}), logger, resources, {
      ...serve,
      allowEmbedded: false,
      command: 'worker',
    });
    await expect(opening).rejects.toThrow(
      /DATABASE_URL is not set: `orders worker` needs a PostgreSQL server/,
    );
  });
});
