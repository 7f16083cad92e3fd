/**
 * The event ids woken (pushed by the server once their transaction committed) and not yet carried
 * by a claim round. Pushing never blocks or throws into the request path: a wake-up the full
 * queue refuses is only counted, and the poller finds its event instead.
 */
import { createEventQueue } from './wake-up-queue.js';

export interface WokenIds {
  /** Never throws. */
  push(eventId: string): void;
  /** Removes and returns up to `limit` ids, oldest first. */
  take(limit: number): string[];
  /** Ids a failed claim carried: they wait for the next round. */
  putBack(ids: readonly string[]): void;
  readonly size: number;
  /** Wake-ups the full queue refused. */
  readonly dropped: number;
  /** Moves pushed ids into the set, calling `onWake` per batch, until close(). */
  run(onWake: () => void): Promise<void>;
  /** Later pushes are ignored; run() ends. */
  close(): void;
}

/** At most `capacity` ids wait in the queue, and at most `capacity` in the set. */
export function createWokenIds(capacity: number): WokenIds {
  const queue = createEventQueue<string>({ capacity });
  const woken = new Set<string>();
  let dropped = 0;

  return {
    push(eventId) {
      try {
        if (!queue.push(eventId) && !queue.closed) dropped++;
      } catch {
        // Never throws into the request path: the poller is the safety net.
      }
    },
    take(limit) {
      const ids: string[] = [];
      for (const id of woken) {
        if (ids.length >= limit) break;
        ids.push(id);
        woken.delete(id);
      }
      return ids;
    },
    putBack(ids) {
      for (const id of ids) woken.add(id);
    },
    get size() {
      return woken.size;
    },
    get dropped() {
      return dropped;
    },
    async run(onWake) {
      for await (const ids of queue) {
        for (const id of ids) {
          if (woken.size < capacity) woken.add(id);
        }
        onWake();
      }
    },
    close() {
      queue.close();
    },
  };
}
