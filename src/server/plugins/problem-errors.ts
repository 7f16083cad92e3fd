/**
 * Every error answers in problem+json: thrown by a route or hook, no route matched, rejected by
 * the router, or rejected by Node's HTTP server (parser, request timeout). The last two are server
 * options, so buildApp passes them to Fastify() itself.
 */
import { STATUS_CODES } from 'node:http';
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
 * Requests Node's HTTP server rejects never reach fastify: the parser's (oversized headers,
 * garbage) and the request timeout's (a client still sending when REQUEST_TIMEOUT_MS passed).
 * Answer them in the same problem+json shape instead of Node's bare status line, then close: the
 * client may still be sending, and nothing it sends on this connection will be read.
 */
export function clientErrorHandler(requestTimeoutMs: number) {
  return (error: Error, socket: Socket): void => {
    const code = (error as { code?: string }).code;
    if (!socket.writable || code === 'ECONNRESET' || responseUnderWay(socket)) {
      socket.destroy();
      return;
    }
    const problem =
      code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new AppError('request_timeout', `The request did not arrive within ${requestTimeoutMs} ms.`)
        : new AppError(
            'validation_failed',
            code === 'HPE_HEADER_OVERFLOW'
              ? 'The request headers are too large.'
              : 'The request is malformed.',
          );
    const status = httpStatus(problem.code);
    const body = JSON.stringify(problemBody(problem, ''));
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      () => socket.destroy(),
    );
  };
}

/**
 * A response already being written on this socket must not be interleaved with ours: Node's own
 * default handler makes the same check (the socket's current response is `_httpMessage`).
 */
function responseUnderWay(socket: Socket): boolean {
  return (
    (socket as Socket & { _httpMessage?: { headersSent: boolean } | null })._httpMessage?.headersSent === true
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
