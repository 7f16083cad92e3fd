/**
 * The request deadline: `request.cancellation` aborts when REQUEST_TIMEOUT_MS passes or the
 * client goes away, so the database stops work nobody is waiting for.
 *
 * The signal is a RequestCancellation, not an AbortController's: the database needs only
 * `aborted`, `reason` and abort listeners (platform/db.ts, CancelSignal), and an AbortController
 * with its first listener costs ~4 µs per request (measured), a tenth of a whole GET.
 *
 * No timer and no listener per request either. Every request has the same timeout, so deadlines
 * pass in arrival order: the requests in flight wait in one queue (Deadlines), in that order,
 * under a single timer armed for the oldest one's deadline. A request leaves the queue when its
 * response is sent (the onResponse hook) once everything older has left too, or at its deadline,
 * so the queue never holds anything longer than REQUEST_TIMEOUT_MS. A client that goes away is
 * seen on its connection: each socket gets one `close` listener, the first time it carries a
 * request, which aborts the requests still in flight on it (a keep-alive or pipelining client may
 * have several).
 */
import { AsyncResource } from 'node:async_hooks';
import type { Socket } from 'node:net';
import fp from 'fastify-plugin';
import type { CancelSignal } from '../../platform/db.js';
import { AppError } from '../../platform/errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Aborted when the request's deadline passes or the client goes away: hand it to the database. */
    cancellation: CancelSignal;
  }
}

/** A one-shot abort signal with the AbortSignal semantics the database relies on. */
export class RequestCancellation implements CancelSignal {
  aborted = false;
  reason: unknown = undefined;
  private listeners: (() => void)[] | undefined;

  addEventListener(_type: 'abort', listener: () => void): void {
    // Every listener here is once-only: it runs at most once, at the abort.
    if (this.aborted) return;
    if (this.listeners) this.listeners.push(listener);
    else this.listeners = [listener];
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const listeners = this.listeners;
    if (!listeners) return;
    const at = listeners.lastIndexOf(listener);
    if (at >= 0) listeners.splice(at, 1);
  }

  /** Sets `reason` and runs the listeners once, in the order they were added (as AbortSignal does). */
  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners) for (const listener of listeners) listener();
  }
}

/** A request in flight: its cancellation, when its deadline passes, and whether it was answered. */
export class InFlight extends RequestCancellation {
  /** Its response was sent: nothing aborts it any more. */
  finished = false;

  constructor(
    /** On performance.now()'s clock. */
    readonly deadline: number,
  ) {
    super();
  }

  /** Answered or aborted: nothing is left to do for it. */
  get ended(): boolean {
    return this.finished || this.aborted;
  }
}

/**
 * Node's timers count from the event loop's cached clock, which may lag performance.now() by the
 * work done so far in the loop's turn: a timer may fire that much early. A request whose
 * deadline is closer than this when the timer fires is aborted then, not after another timer.
 */
const EARLY_FIRE_MS = 1;
const INITIAL_CAPACITY = 64;

/**
 * The requests in flight in arrival order (a ring buffer), and one unref'd timer for the oldest
 * one's deadline. Deadlines never decrease along the queue (one timeout, a monotonic clock), so a
 * timer armed for the head never fires late: at worst early, for a head that has since left.
 */
export class Deadlines {
  private ring = emptyRing(INITIAL_CAPACITY);
  private first = 0;
  private count = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly message: string;
  /**
   * Run in the context the queue was made in, not in that of whichever request armed the timer:
   * the aborts it runs are other requests' (the database sends its CancelRequests from them).
   */
  private readonly onTimer = AsyncResource.bind(() => this.expire());

  constructor(private readonly timeoutMs: number) {
    this.message = `The request did not finish within ${timeoutMs} ms.`;
  }

  /** Requests in the queue: in flight, or ended behind an older one still in flight. */
  get size(): number {
    return this.count;
  }

  /** The deadline of a request arriving now starts. */
  start(): InFlight {
    const request = new InFlight(performance.now() + this.timeoutMs);
    if (this.count === this.ring.length) this.grow();
    this.ring[(this.first + this.count) & (this.ring.length - 1)] = request;
    this.count++;
    // Armed whenever the queue is not empty: unarmed, the queue held nothing older.
    if (this.timer === undefined) this.arm(this.timeoutMs);
    return request;
  }

  /** The request was answered: it is never aborted now, and leaves once everything older has. */
  finish(request: InFlight): void {
    request.finished = true;
    if (this.ring[this.first] === request) this.dropEnded();
  }

  /** Drops the ended requests at the head. */
  dropEnded(): void {
    while (this.count > 0 && (this.ring[this.first] as InFlight).ended) this.shift();
  }

  private shift(): InFlight {
    const head = this.ring[this.first] as InFlight;
    this.ring[this.first] = undefined;
    this.first = (this.first + 1) & (this.ring.length - 1);
    this.count--;
    return head;
  }

  private grow(): void {
    const ring = emptyRing(this.ring.length * 2);
    for (let i = 0; i < this.count; i++) ring[i] = this.ring[(this.first + i) & (this.ring.length - 1)];
    this.ring = ring;
    this.first = 0;
  }

  private arm(ms: number): void {
    // Timers count whole milliseconds: rounded, the abort comes within ±0.5 ms of the deadline
    // (and the early-fire tolerance above), as a timer per request did.
    this.timer = setTimeout(this.onTimer, Math.max(1, Math.round(ms)));
    this.timer.unref();
  }

  private expire(): void {
    this.timer = undefined;
    try {
      const now = performance.now();
      while (this.count > 0) {
        const head = this.ring[this.first] as InFlight;
        if (!head.ended && head.deadline - now > EARLY_FIRE_MS) break;
        this.shift();
        // A listener that throws leaves the rest for the next timer (armed below).
        if (!head.ended) head.abort(new AppError('timeout', this.message));
      }
    } finally {
      this.dropEnded();
      if (this.count > 0) {
        this.arm((this.ring[this.first] as InFlight).deadline - performance.now());
      } else if (this.ring.length > INITIAL_CAPACITY * 16) {
        // Empty after a burst: give the memory back.
        this.ring = emptyRing(INITIAL_CAPACITY);
        this.first = 0;
      }
    }
  }
}

/** A packed array (no holes) of `capacity` slots, a power of two. */
function emptyRing(capacity: number): (InFlight | undefined)[] {
  const ring: (InFlight | undefined)[] = [];
  for (let i = 0; i < capacity; i++) ring.push(undefined);
  return ring;
}

const IN_FLIGHT = Symbol('requests in flight on this connection');

interface WatchedSocket extends Socket {
  [IN_FLIGHT]?: InFlight[];
}

export const requestDeadline = fp<{ timeoutMs: number }>(
  async (app, { timeoutMs }) => {
    app.decorateRequest('cancellation', null as unknown as CancelSignal);
    const deadlines = new Deadlines(timeoutMs);

    /** A socket's `close` listener: the requests still in flight on it lost their client. */
    function clientGone(this: WatchedSocket): void {
      const requests = this[IN_FLIGHT];
      if (!requests) return;
      for (const request of requests) {
        // Closed before we finished writing: the client went away; stop its database work.
        if (!request.ended) request.abort(new AppError('timeout', 'The client closed the connection.'));
      }
      deadlines.dropEnded();
    }

    app.addHook('onRequest', (request, _reply, done) => {
      const cancellation = deadlines.start();
      request.cancellation = cancellation;
      const socket = request.raw.socket as WatchedSocket;
      const onSocket = socket[IN_FLIGHT];
      if (onSocket === undefined) {
        socket[IN_FLIGHT] = [cancellation];
        socket.on('close', clientGone);
      } else if (onSocket.length === 1 && (onSocket[0] as InFlight).ended) {
        // Keep-alive: the connection's previous request has ended.
        onSocket[0] = cancellation;
      } else {
        let kept = 0;
        for (const other of onSocket) if (!other.ended) onSocket[kept++] = other;
        onSocket.length = kept;
        onSocket.push(cancellation);
      }
      done();
    });

    // Fastify runs this on the response's `finish` (or `error`): sent, nothing left to cancel.
    // A response that never finishes (the socket was destroyed first) ends at the socket's close.
    app.addHook('onResponse', (request, _reply, done) => {
      // Null when an earlier onRequest hook failed the request before this plugin's ran.
      const cancellation = request.cancellation as InFlight | null;
      if (cancellation !== null) deadlines.finish(cancellation);
      done();
    });
  },
  { name: 'request-deadline' },
);
