/**
 * A bounded, in-process async queue: the server pushes committed event ids, the worker takes them.
 *
 * It is only a latency shortcut. The outbox table is the source of truth and the worker's poller
 * the safety net, so the queue never blocks or throws on the producer side: a push to a full or
 * closed queue just returns false and the event is found by the next poll.
 *
 * Closing ends consumers: `take()` on a closed, drained queue resolves `null` and async
 * iteration finishes, so a consumer loop written `while ((batch = await q.take()) !== null)`
 * or `for await (const batch of q)` terminates instead of spinning on an already-resolved
 * promise (the classic bug behind a 100 % CPU shutdown).
 */

export interface EventQueue<T> extends AsyncIterable<T[]> {
  /** Adds an item. False (never a throw) when the queue is closed or full. */
  push(item: T): boolean;
  /**
   * Waits for at least one item and resolves with up to `max` of them (oldest first), or with
   * `null` once the queue is closed and drained. Items buffered before `close()` are still
   * delivered; an aborted signal resolves `null` for this call only.
   */
  take(max?: number, signal?: AbortSignal): Promise<T[] | null>;
  /** Wakes every waiting consumer with `null`; later pushes return false. Idempotent. */
  close(): void;
  readonly closed: boolean;
  readonly size: number;
  readonly capacity: number;
}

export interface EventQueueOptions {
  /** Items held at most; pushes beyond it are refused (default 10,000). */
  capacity?: number;
}

interface Waiter<T> {
  max: number;
  resolve: (items: T[] | null) => void;
}

export function createEventQueue<T>(options: EventQueueOptions = {}): EventQueue<T> {
  const capacity = options.capacity ?? 10_000;
  if (!Number.isInteger(capacity) || capacity < 1)
    throw new RangeError('capacity must be a positive integer');
  // A ring would save the shift() cost; batches are small and take() splices them off at once.
  let items: T[] = [];
  const waiters: Waiter<T>[] = [];
  let closed = false;

  function takeNow(max: number): T[] {
    if (items.length <= max) {
      const all = items;
      items = [];
      return all;
    }
    return items.splice(0, max);
  }

  const queue: EventQueue<T> = {
    push(item) {
      if (closed || items.length >= capacity) return false;
      items.push(item);
      // Hand the item to a waiting consumer right away (one waiter per push is enough: the
      // waiter takes everything buffered, up to its max).
      const waiter = waiters.shift();
      if (waiter) waiter.resolve(takeNow(waiter.max));
      return true;
    },
    take(max = Number.POSITIVE_INFINITY, signal) {
      if (!(max >= 1)) return Promise.reject(new RangeError('max must be at least 1'));
      if (items.length > 0) return Promise.resolve(takeNow(max));
      if (closed || signal?.aborted) return Promise.resolve(null);
      return new Promise<T[] | null>((resolve) => {
        const waiter: Waiter<T> = {
          max,
          resolve: (value) => {
            signal?.removeEventListener('abort', onAbort);
            resolve(value);
          },
        };
        function onAbort() {
          const index = waiters.indexOf(waiter);
          if (index >= 0) waiters.splice(index, 1);
          resolve(null);
        }
        signal?.addEventListener('abort', onAbort, { once: true });
        waiters.push(waiter);
      });
    },
    close() {
      if (closed) return;
      closed = true;
      // Waiters exist only while the buffer is empty, so each of them ends now.
      for (const waiter of waiters.splice(0)) waiter.resolve(null);
    },
    get closed() {
      return closed;
    },
    get size() {
      return items.length;
    },
    capacity,
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const batch = await queue.take();
        if (batch === null) return;
        yield batch;
      }
    },
  };
  return queue;
}
