/**
 * Load shedding: while the event loop lags behind by more than the threshold, new requests are
 * answered 503 with Retry-After at once rather than queued behind work that is already late.
 */
import underPressure from '@fastify/under-pressure';
import fp from 'fastify-plugin';
import { AppError } from '../../platform/errors.js';
import { sendProblem } from '../problem.js';

export const loadShedding = fp<{ maxEventLoopDelayMs: number }>(
  async (app, { maxEventLoopDelayMs }) => {
    await app.register(underPressure, {
      maxEventLoopDelay: maxEventLoopDelayMs,
      retryAfter: 1,
      exposeStatusRoute: false,
      pressureHandler: (request, reply) => {
        sendProblem(
          request,
          reply,
          new AppError('unavailable', 'The server is overloaded. Retry shortly.', { retryAfterSeconds: 1 }),
        );
      },
    });
  },
  // After tracing: a shed request still gets its span, and its log line the trace ids.
  { name: 'load-shedding', dependencies: ['tracing'] },
);
