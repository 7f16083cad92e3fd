/**
 * Handling one consumed message at a time within a bound: the consumer's side of a message's
 * life once it left the client's buffer (nats-consumer.ts decides when to take one).
 *
 * A message is kept alive with `working()` while its handler runs, acked only once the handler
 * resolved (its transaction committed), and on a rejection nakked with the caller's delay, so it
 * comes back later without holding up the messages behind it. A handler aborted at shutdown is
 * given back at once (nak, no delay); nothing is ever acked that did not commit.
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { Logger } from '../platform/logger.js';
import { within } from '../platform/shutdown.js';
import type { InboundMessage } from './inbox-message.js';

/** Resolves once the message's outcome is committed (it is acked then); rejects to have it redelivered later. */
export type InboundHandler = (message: InboundMessage, signal: AbortSignal) => Promise<void>;

export interface DispatcherOptions {
  handle: InboundHandler;
  /** Messages handled at once. */
  concurrency: number;
  /** The redelivery delay after the delivery `deliveryCount` failed. */
  retryDelay: (deliveryCount: number) => number;
  /** How often a message being handled is kept alive. */
  workingMs: number;
  logger: Logger;
}

const WARN_INTERVAL_MS = 5_000;

export function createDispatcher(options: DispatcherOptions) {
  const { logger } = options;
  const slots = createSlots(options.concurrency);
  const handling = new Set<Promise<void>>();
  const aborting = new AbortController();
  // With the database down every message fails alike: one line per interval, with a count.
  let lastWarnAt = 0;
  let suppressed = 0;
  function warnAtMost(fields: Record<string, unknown>, message: string) {
    const now = Date.now();
    if (now - lastWarnAt < WARN_INTERVAL_MS) {
      suppressed++;
      return;
    }
    logger.warn({ ...fields, alikeSinceLastWarning: suppressed }, message);
    lastWarnAt = now;
    suppressed = 0;
  }

  function dispatch(msg: JsMsg) {
    const keepAlive = setInterval(() => settle(() => msg.working()), options.workingMs);
    const task = (async () => {
      try {
        await options.handle(toInbound(msg), aborting.signal);
        settle(() => msg.ack());
      } catch (error) {
        if (aborting.signal.aborted) {
          settle(() => msg.nak());
          return;
        }
        const delayMs = options.retryDelay(msg.info.deliveryCount);
        warnAtMost(
          { err: error, subject: msg.subject, deliveryCount: msg.info.deliveryCount, retryInMs: delayMs },
          'a consumed event could not be handled now; it is redelivered later',
        );
        settle(() => msg.nak(delayMs));
      } finally {
        clearInterval(keepAlive);
        slots.release();
      }
    })();
    handling.add(task);
    void task.finally(() => handling.delete(task));
  }

  return {
    /** Waits for a free slot; false when `signal` fired first (the message is not taken). */
    acquire: (signal: AbortSignal) => slots.acquire(signal),
    /** Handles a message in the slot just acquired. */
    dispatch,
    get inFlight() {
      return handling.size;
    },
    /**
     * Lets the running handlers finish within `timeoutMs`; then aborts them (their messages are
     * given back) and waits a last `graceMs`. True when every handler ended.
     */
    async finish(timeoutMs: number, graceMs: number): Promise<boolean> {
      if (await within(Math.max(0, timeoutMs), Promise.all(handling))) return true;
      aborting.abort(new Error('the consumer is stopping'));
      return within(graceMs, Promise.all(handling));
    },
  };
}

function toInbound(msg: JsMsg): InboundMessage {
  const headers: Record<string, string> = {};
  for (const key of msg.headers?.keys() ?? []) headers[key] = msg.headers?.get(key) ?? '';
  return { subject: msg.subject, body: msg.data, headers, deliveryCount: msg.info.deliveryCount };
}

/** Ack, nak and working() are fire-and-forget publishes; on a closed connection they throw: ignored. */
export function settle(send: () => void) {
  try {
    send();
  } catch {
    // The message is redelivered after its ack wait; the inbox makes that a duplicate.
  }
}

/** A counting semaphore whose waits end (false) when the signal fires. */
function createSlots(size: number) {
  let free = Math.max(1, size);
  const waiters: ((ok: boolean) => void)[] = [];
  return {
    acquire(signal: AbortSignal): Promise<boolean> {
      if (signal.aborted) return Promise.resolve(false);
      if (free > 0) {
        free--;
        return Promise.resolve(true);
      }
      return new Promise((resolve) => {
        const onAbort = () => {
          const index = waiters.indexOf(grant);
          if (index !== -1) waiters.splice(index, 1);
          resolve(false);
        };
        const grant = (ok: boolean) => {
          signal.removeEventListener('abort', onAbort);
          resolve(ok);
        };
        waiters.push(grant);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    },
    release() {
      const next = waiters.shift();
      if (next) next(true);
      else free++;
    },
  };
}
