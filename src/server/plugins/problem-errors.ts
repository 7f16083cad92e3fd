/**
 * Every error answers in problem+json: thrown by a route or hook, no route matched, rejected by
 * the router, or rejected by Node's HTTP parser. The last two are server options, so buildApp
 * passes them to Fastify() itself.
 */
import type { Socket } from 'node:net';
import type { FastifyServerOptions } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../../platform/errors.js';
import { httpStatus, PROBLEM_CONTENT_TYPE, problemBody } from '../../platform/problem.js';
import { sendProblem, toAppError } from '../problem.js';

/**
 * Router-level rejections (bad percent-encoding, over-long path parameters) take the same
 * problem+json path as everything else.
 */
export const frameworkErrors: FastifyServerOptions['frameworkErrors'] = (error, request, reply) => {
  const detail =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'A path parameter is too long.' : 'The URL is malformed.';
  sendProblem(request, reply, new AppError('validation_failed', detail, { cause: error }));
};

/**
 * Requests Node's HTTP parser rejects (oversized headers, garbage) never reach fastify; answer
 * them in the same problem+json shape instead of Node's bare status line.
 */
export function clientErrorHandler(error: Error, socket: Socket): void {
  if (!socket.writable || (error as { code?: string }).code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const tooLarge = (error as { code?: string }).code === 'HPE_HEADER_OVERFLOW';
  const body = JSON.stringify(
    problemBody(
      new AppError(
        'validation_failed',
        tooLarge ? 'The request headers are too large.' : 'The request is malformed.',
      ),
      '',
    ),
  );
  socket.end(
    `HTTP/1.1 400 Bad Request\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export const problemErrors = fp(
  async (app) => {
    app.setErrorHandler((error, request, reply) => {
      const appError = toAppError(error);
      if (httpStatus(appError.code) >= 500) {
        request.log.error({ err: error, code: appError.code }, 'request failed');
      }
      return sendProblem(request, reply, appError);
    });

    app.setNotFoundHandler((request, reply) =>
      sendProblem(
        request,
        reply,
        new AppError('not_found', `No route for ${request.method} ${request.url.split('?')[0]}.`),
      ),
    );
  },
  { name: 'problem-errors' },
);
