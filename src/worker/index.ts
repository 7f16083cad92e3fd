/**
 * The event worker's public surface. (The implementation arrives with the events work; until
 * then serve runs with WORKER_ENABLED=false semantics if this throws.)
 */
import type { Config } from '../config.js';
import type { Db } from '../core/db.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';

export interface WorkerDeps {
  db: Db;
  logger: Logger;
  metrics: Metrics;
  config: Config;
}

export interface Worker {
  /** Starts claiming (wake-ups and the backstop poller). */
  start(): Promise<void>;
  /** Stops claiming; lets in-flight handlers finish within timeoutMs, then aborts and releases them. */
  stop(options: { timeoutMs: number }): Promise<void>;
  /** Called after an order's transaction committed: handle this event now. Never throws. */
  wake(eventId: string): void;
}

export function createWorker(_deps: WorkerDeps): Worker {
  throw new Error('the event worker is not implemented yet');
}
