import type { FastifyBaseLogger } from 'fastify';
import { AppError } from './errors.js';

const READINESS_TIMEOUT_MS = 2_000;

/**
 * What `/readyz` must answer 503 with right now (shutting down, stalled, database unreachable,
 * schema not current), or undefined when ready. Shared by the API and the worker's probe server.
 */
export async function notReady(
  readiness: (signal: AbortSignal) => Promise<boolean>,
  options: {
    shuttingDown: boolean;
    logger: Pick<FastifyBaseLogger, 'warn'>;
    process: string;
    /** Why the process cannot do its work although the database answers the probe, if so. */
    stalled?: string | undefined;
  },
): Promise<AppError | undefined> {
  if (options.shuttingDown) return new AppError('unavailable', `The ${options.process} is shutting down.`);
  if (options.stalled) return new AppError('unavailable', options.stalled, { retryAfterSeconds: 5 });
  let ready = false;
  try {
    ready = await readiness(AbortSignal.timeout(READINESS_TIMEOUT_MS));
  } catch (error) {
    options.logger.warn({ err: error }, 'readiness check failed');
  }
  if (ready) return undefined;
  return new AppError(
    'unavailable',
    'The database is unreachable or its schema is not current (run `orders migrate up`).',
    { retryAfterSeconds: 5 },
  );
}
