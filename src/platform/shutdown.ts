/**
 * Shutting down: resources register how they are released and are released in reverse order
 * exactly once; sleep and within bound the drain. Which signal starts it is the commands'
 * business (commands/runtime.ts).
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
