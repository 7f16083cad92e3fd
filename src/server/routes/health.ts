import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError } from '../../platform/errors.js';
import { JSON_CONTENT_TYPE } from '../../platform/problem.js';
import { notReady } from '../../platform/readiness.js';
import type { AppDeps } from '../app.js';
import { problemResponses, sendProblem, sendRaw } from '../problem.js';

const Status = z.object({ status: z.string().meta({ example: 'ok' }) });

export const healthRoutes: FastifyPluginAsyncZod<AppDeps> = async (app, deps) => {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['operations'],
        security: [],
        summary: 'Liveness: the process runs (touches no dependency)',
        operationId: 'getHealth',
        response: { 200: { description: 'Alive', content: { 'application/json': { schema: Status } } } },
      },
    },
    async (_request, reply) => sendRaw(reply, 200, JSON_CONTENT_TYPE, '{"status":"ok"}'),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['operations'],
        security: [],
        summary: 'Readiness: the database answers and the schema is current; 503 from shutdown on',
        operationId: 'getReadiness',
        response: {
          200: { description: 'Ready', content: { 'application/json': { schema: Status } } },
          ...problemResponses(503),
        },
      },
    },
    async (request, reply) => {
      const problem = await notReady(deps.readiness, {
        shuttingDown: deps.lifecycle.shuttingDown,
        logger: request.log,
        process: 'server',
      });
      if (problem) return sendProblem(request, reply, problem);
      return sendRaw(reply, 200, JSON_CONTENT_TYPE, '{"status":"ready"}');
    },
  );

  app.get(
    '/metrics',
    {
      schema: {
        tags: ['operations'],
        security: [],
        summary: 'Prometheus metrics (text exposition format)',
        operationId: 'getMetrics',
        response: {
          200: {
            description: 'Metrics',
            content: { 'text/plain; version=0.0.4; charset=utf-8': { schema: z.string() } },
          },
          ...problemResponses(503),
        },
      },
    },
    async (request, reply) => {
      let body: string;
      try {
        body = await deps.metrics.exposition();
      } catch (error) {
        // `serve --processes N`: a process did not answer in time. No answer beats a partial
        // sum, which Prometheus would read as a counter reset.
        request.log.warn({ err: error }, 'cannot collect the metrics of every serve process');
        return sendProblem(
          request,
          reply,
          new AppError('unavailable', 'The metrics of every serve process could not be collected in time.', {
            retryAfterSeconds: 5,
          }),
        );
      }
      return sendRaw(reply, 200, deps.metrics.registry.contentType, body);
    },
  );
};
