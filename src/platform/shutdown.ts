/**
 * Process lifecycle: resources register how they are released, shutdown releases them in
 * reverse order exactly once, the first SIGTERM/SIGINT drains, the second exits at once.
 */
import type { Logger } from './logger.js';

export interface Releasable {
  name: string;
  release: () => Promise<void> | void;
}

/** A releaser stack: what was acquired last is released first; release() is idempotent. */
export function createResourceStack(logger: Logger) {
  const stack: Releasable[] = [];
  let releasing: Promise<void> | undefined;
  return {
    push(name: string, release: Releasable['release']) {
      stack.push({ name, release });
    },
    release(): Promise<void> {
      releasing ??= (async () => {
        while (stack.length > 0) {
          const item = stack.pop()!;
          try {
            await item.release();
          } catch (error) {
            logger.error({ err: error, resource: item.name }, 'failed to release resource');
          }
        }
      })();
      return releasing;
    },
  };
}

export type ResourceStack = ReturnType<typeof createResourceStack>;

/**
 * Resolves with the first SIGTERM or SIGINT. A second signal while the first is being handled
 * calls `onForce` (which should exit the process immediately).
 */
export function waitForShutdownSignal(logger: Logger, onForce: (signal: NodeJS.Signals) => void) {
  return new Promise<NodeJS.Signals>((resolve) => {
    let received = false;
    const handler = (signal: NodeJS.Signals) => {
      if (received) {
        logger.warn({ signal }, 'second signal: exiting immediately');
        onForce(signal);
        return;
      }
      received = true;
      logger.info({ signal }, 'shutdown signal received: draining');
      resolve(signal);
    };
    process.on('SIGTERM', handler);
    process.on('SIGINT', handler);
  });
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Resolves `true` when `work` finished within `ms`, `false` when the time ran out first. */
export async function within(ms: number, work: Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([work.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
