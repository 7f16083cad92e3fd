/**
 * Gentle connection draining. Node's server.close() destroys every idle keep-alive socket at
 * once, which resets a request that is already on the wire but not yet parsed (a race every
 * load balancer hits during rollouts). Instead we stop accepting, serve whatever arrives on open
 * connections (with `Connection: close`), and close a connection only after it has been idle
 * for a grace period.
 *
 * Idle means no request in flight and not one byte received since the last response: a request
 * is ours from its first byte, not from its last header, which may come after the drain began.
 * Node stops timing requests once the server closes, so the sweep does: a request still arriving
 * REQUEST_TIMEOUT_MS after the drain saw it gets Node's 408, and a client that never finishes
 * does not hold the drain until SHUTDOWN_TIMEOUT_MS.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** An idle keep-alive connection is closed this long after its last response, once draining. */
export const IDLE_CONNECTION_GRACE_MS = 250;

interface SocketState {
  active: number;
  idleSince: number;
  /**
   * `socket.bytesRead` when it went idle: more since means a new request has begun. (A request
   * pipelined behind the previous one may have arrived before it; no client or balancer we serve
   * pipelines.)
   */
  bytesReadWhenIdle: number;
  /** The latest request: until it is `complete`, its body is still arriving. */
  request: IncomingMessage | undefined;
  /** When the drain first saw a request arriving on this connection. */
  arrivingSince: number | undefined;
}

export function trackConnections(server: Server) {
  /** Each connection's state lives on its socket: a request finds it without a lookup. */
  const STATE: unique symbol = Symbol('connection state');
  type TrackedSocket = Socket & { [STATE]?: SocketState };
  const sockets = new Set<TrackedSocket>();
  function forget(this: TrackedSocket): void {
    sockets.delete(this);
  }
  /**
   * A response's `close` (after its `finish`, or when its connection closed first): its request
   * is over. One function for every response, which it gets as `this`: no closure or
   * once-wrapper per request. The moment matters: bytes read after it are the next request's.
   */
  function responseClosed(this: ServerResponse): void {
    const socket = this.req.socket as TrackedSocket;
    const state = socket[STATE] as SocketState;
    state.active--;
    state.idleSince = Date.now();
    state.bytesReadWhenIdle = socket.bytesRead;
  }
  server.on('connection', (socket: TrackedSocket) => {
    socket[STATE] = {
      active: 0,
      idleSince: Date.now(),
      bytesReadWhenIdle: 0,
      request: undefined,
      arrivingSince: undefined,
    };
    sockets.add(socket);
    socket.on('close', forget);
  });
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const state = (request.socket as TrackedSocket)[STATE];
    if (state === undefined) return;
    state.active++;
    state.request = request;
    response.on('close', responseClosed);
  });

  function sweep(idleGraceMs: number) {
    const now = Date.now();
    for (const socket of sockets) {
      const state = socket[STATE] as SocketState;
      const waiting = state.active === 0;
      const arriving = waiting ? socket.bytesRead !== state.bytesReadWhenIdle : !state.request?.complete;
      if (!arriving) {
        state.arrivingSince = undefined;
        if (waiting && now - state.idleSince >= idleGraceMs) socket.end();
        continue;
      }
      state.arrivingSince ??= now;
      if (server.requestTimeout > 0 && now - state.arrivingSince >= server.requestTimeout) {
        // Answered exactly as Node's own check answers it: the server's clientError handler.
        const timeout = Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' });
        if (!server.emit('clientError', timeout, socket)) socket.destroy();
      }
    }
  }

  return {
    get open() {
      return sockets.size;
    },
    /**
     * Call before closing the server: from now on, connections idle for `idleGraceMs` are
     * closed by a sweep instead of all at once, and requests still arriving are timed out by it.
     * Returns a function that stops the sweep.
     */
    drainGently(idleGraceMs: number): () => void {
      server.closeIdleConnections = () => undefined;
      const timer = setInterval(() => sweep(idleGraceMs), 50);
      timer.unref();
      return () => clearInterval(timer);
    },
    closeAll() {
      for (const socket of sockets) socket.destroy();
    },
  };
}
