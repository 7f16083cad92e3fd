/**
 * What the long-running commands share: the logger, the releaser stack and the signal, then
 * telemetry, the database (the configured server, or for `serve` only the embedded development
 * database, migrated in-process), metrics and the readiness check.
 */
import type { Config } from '../config.js';
import { createDb, type Db, DEFAULT_STATEMENT_TIMEOUT_MS } from '../platform/db.js';
import { UsageError } from '../platform/errors.js';
import { createLogger, type Logger } from '../platform/logger.js';
import { createMetrics, type Metrics } from '../platform/metrics.js';
import { isSchemaCurrent } from '../platform/migrations.js';
import { createResourceStack, type ResourceStack } from '../platform/shutdown.js';
import { startTelemetry, type Telemetry } from '../platform/telemetry.js';

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
          '(postgres://user:password@host:5432/db). Only `orders serve` runs on the embedded development database.',
      );
    }
    // A production process without a database is a deployment mistake: starting a private,
    // throwaway database per pod would answer /readyz 200 and lose every order on restart.
    if (config.NODE_ENV === 'production') {
      throw new UsageError(
        "DATABASE_URL is not set and NODE_ENV=production: set it to the PostgreSQL server's postgres:// URL. " +
          'The embedded database is for development only.',
      );
    }
    const { startEmbeddedPostgres } = await import('../platform/embedded.js');
    const { migrate } = await import('../platform/migrations.js');
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
    // The request deadline cancels a request's statements first; the server-side bound must
    // never cut one its deadline still allows.
    statementTimeoutMillis: Math.max(DEFAULT_STATEMENT_TIMEOUT_MS, config.REQUEST_TIMEOUT_MS),
    telemetry: options.telemetry,
  });
  resources.push('database pool', () => db.close());
  return { db, url, embedded };
}

/** What every long-running command (serve, worker) starts with. */
export interface ProcessRuntime {
  logger: Logger;
  resources: ResourceStack;
  /** Resolves with the first SIGTERM/SIGINT; a second one exits at once. */
  shutdownSignal: Promise<NodeJS.Signals>;
}

/**
 * `logBindings` go on every line the process logs: `serve --processes N` tells its processes'
 * interleaved lines apart by them.
 */
export function createProcessRuntime(
  config: Config,
  options: { logBindings?: Record<string, unknown> } = {},
): ProcessRuntime {
  const root = createLogger(config.LOG_LEVEL);
  const logger = options.logBindings ? root.child(options.logBindings) : root;
  const resources = createResourceStack(logger);
  return { logger, resources, shutdownSignal: waitForShutdownSignal(logger) };
}

/**
 * Resolves with the first SIGTERM or SIGINT. A second signal while the first is being handled
 * exits the process at once (code 1): the operator asked twice.
 */
function waitForShutdownSignal(logger: Logger): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let received = false;
    const handler = (signal: NodeJS.Signals) => {
      if (received) {
        logger.warn({ signal }, 'second signal: exiting immediately');
        logger.flush();
        process.exit(1);
      }
      received = true;
      logger.info({ signal }, 'shutdown signal received: draining');
      resolve(signal);
    };
    process.on('SIGTERM', handler);
    process.on('SIGINT', handler);
  });
}

export interface Services extends OpenedDatabase {
  telemetry: Telemetry;
  metrics: Metrics;
  /** /readyz: the database answers and every shipped migration is applied. */
  readiness: (signal: AbortSignal) => Promise<boolean>;
}

/** Telemetry, the database pool and metrics, each registered for release in reverse order. */
export async function openServices(
  config: Config,
  runtime: ProcessRuntime,
  options: { allowEmbedded: boolean; command: string; applicationName: string },
): Promise<Services> {
  const { logger, resources } = runtime;
  const telemetry = await startTelemetry({
    endpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT,
    serviceName: config.OTEL_SERVICE_NAME,
    logger,
  });
  resources.push('telemetry', () => telemetry.shutdown());
  const opened = await openDatabase(config, logger, resources, { ...options, telemetry });
  const metrics = createMetrics();
  metrics.trackPool(() => opened.db.stats());
  let schemaCurrent = false;
  const readiness = async (signal: AbortSignal) => {
    await opened.db.query('SELECT 1', undefined, { signal });
    // Once current, the schema stays current for this process's lifetime.
    schemaCurrent ||= await isSchemaCurrent(opened.db, { signal });
    return schemaCurrent;
  };
  return { ...opened, telemetry, metrics, readiness };
}

/**
 * Runs a long-running command's body (which returns once it has drained after a signal), then
 * releases every resource in reverse order, however the body ended. Exit code 0 after a drain.
 */
export async function runToCompletion(runtime: ProcessRuntime, body: () => Promise<void>): Promise<number> {
  try {
    await body();
    await runtime.resources.release();
    runtime.logger.info('shutdown complete');
    return 0;
  } catch (error) {
    await runtime.resources.release();
    throw error;
  } finally {
    runtime.logger.flush();
  }
}
