/**
 * The request deadline: `request.cancellation` aborts when REQUEST_TIMEOUT_MS passes or the
 * client goes away, so the database stops work nobody is waiting for.
 */
import fp from 'fastify-plugin';
import { AppError } from '../../platform/errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Aborted when the request's deadline passes or the client goes away: hand it to the database. */
    cancellation: AbortSignal;
  }
}

export const requestDeadline = fp<{ timeoutMs: number }>(
  async (app, { timeoutMs }) => {
    app.decorateRequest('cancellation', null as unknown as AbortSignal);

    app.addHook('onRequest', (request, reply, done) => {
      const controller = new AbortController();
      request.cancellation = controller.signal;
      const timer = setTimeout(() => {
        controller.abort(new AppError('timeout', `The request did not finish within ${timeoutMs} ms.`));
      }, timeoutMs);
      timer.unref();
      reply.raw.once('close', () => {
        clearTimeout(timer);
        // Closed before we finished writing: the client went away; stop its database work.
        if (!reply.raw.writableFinished && !controller.signal.aborted) {
          controller.abort(new AppError('timeout', 'The client closed the connection.'));
        }
      });
      done();
    });
  },
  { name: 'request-deadline' },
);
