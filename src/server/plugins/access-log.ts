/**
 * The access log: one log line and one duration sample per request, and the headers every
 * response carries (its X-Request-Id; `Connection: close` once the process is draining).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import fp from 'fastify-plugin';
import { infoFlat, type Logger } from '../../platform/logger.js';
import type { Metrics } from '../../platform/metrics.js';
import type { Lifecycle } from '../app.js';

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/** genReqId: the caller's X-Request-Id when it is 1–128 visible ASCII characters, else a new one. */
export function requestId(request: IncomingMessage): string {
  const header = request.headers['x-request-id'];
  return typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID();
}

export const accessLog = fp<{ metrics: Metrics; lifecycle: Lifecycle }>(
  async (app, { metrics, lifecycle }) => {
    app.addHook('onSend', (request, reply, payload, done) => {
      reply.header('x-request-id', request.id);
      if (lifecycle.draining) reply.header('connection', 'close');
      done(null, payload);
    });

    app.addHook('onResponse', (request, reply, done) => {
      const route = request.routeOptions.url ?? 'unmatched';
      const seconds = reply.elapsedTime / 1000;
      metrics.httpRequestDuration.observe(request.method, route, reply.statusCode, seconds);
      // logger.info's very line, built directly (platform/logger.ts, infoFlat).
      infoFlat(
        request.log as Logger,
        {
          method: request.method,
          route,
          url: request.url,
          statusCode: reply.statusCode,
          durationMs: Math.round(reply.elapsedTime * 100) / 100,
          // The caller, never its token.
          sub: request.principal?.subject,
        },
        'request completed',
      );
      done();
    });
  },
  // The log line goes through request.log, which tracing gives the request's trace ids.
  { name: 'access-log', dependencies: ['tracing'] },
);
