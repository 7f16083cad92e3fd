/**
 * Gentle connection draining. Node's server.close() destroys every idle keep-alive socket at
 * once, which resets a request that is already on the wire but not yet parsed (a race every
 * load balancer hits during rollouts). Instead we stop accepting, serve whatever arrives on open
 * connections (with `Connection: close`), and close a connection only after it has been idle
 * for a grace period.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

interface SocketState {
  active: number;
  idleSince: number;
}

export function trackConnections(server: Server) {
  const sockets = new Map<Socket, SocketState>();
  server.on('connection', (socket: Socket) => {
    sockets.set(socket, { active: 0, idleSince: Date.now() });
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('request', (request, response) => {
    const state = sockets.get(request.socket);
    if (!state) return;
    state.active++;
    response.once('close', () => {
      state.active--;
      state.idleSince = Date.now();
    });
  });

  return {
    get open() {
      return sockets.size;
    },
    /**
     * Call before closing the server: from now on, connections idle for `idleGraceMs` are
     * closed by a sweep instead of all at once. Returns a function that stops the sweep.
     */
    drainGently(idleGraceMs: number): () => void {
      server.closeIdleConnections = () => undefined;
      const sweep = setInterval(() => {
        const now = Date.now();
        for (const [socket, state] of sockets) {
          if (state.active === 0 && now - state.idleSince >= idleGraceMs) socket.end();
        }
      }, 50);
      sweep.unref();
      return () => clearInterval(sweep);
    },
    closeAll() {
      for (const socket of sockets.keys()) socket.destroy();
    },
  };
}
