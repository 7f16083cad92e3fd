import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { OrderEvents } from '../../messaging/events.js';
import { parseIdempotencyKey, requestFingerprint } from '../../orders/idempotency.js';
import { Order, OrderIdParams, OrderInput } from '../../orders/schemas.js';
import type { CreateOrderResult } from '../../orders/service.js';
import { AppError } from '../../platform/errors.js';
import { JSON_CONTENT_TYPE } from '../../platform/problem.js';
import { currentTraceCarrier, disabledTelemetry } from '../../platform/telemetry.js';
import type { AppDeps } from '../app.js';
import { problemResponses, sendRaw } from '../problem.js';

const IS_JSON = /^application\/json\s*(;|$)/i;

const IdempotencyHeaders = z.looseObject({
  'idempotency-key': z
    .string()
    .optional()
    .meta({
      description:
        'Makes the request safe to retry (draft-ietf-httpapi-idempotency-key-header). 1–255 visible ASCII ' +
        'characters, bare (`abc`) or as a structured-field string (`"abc"`). A repeat with the same key and ' +
        'the same body gets the first response again with `Idempotent-Replayed: true`; a different body ' +
        'gets 422; a repeat while the first is in flight gets 409. Keys expire after IDEMPOTENCY_TTL_HOURS.',
    }),
});

export const orderRoutes: FastifyPluginAsyncZod<AppDeps> = async (app, deps) => {
  const telemetry = deps.telemetry ?? disabledTelemetry();

  app.post(
    '/orders',
    {
      schema: {
        tags: ['orders'],
        summary: 'Create an order',
        headers: IdempotencyHeaders,
        body: OrderInput,
        response: {
          201: { description: 'Created (or replayed)', content: { 'application/json': { schema: Order } } },
          ...problemResponses(400, 409, 413, 415, 422, 500, 503, 504),
        },
      },
      // Before the body is parsed: a body that is not declared as JSON is refused with 415.
      onRequest: async (request) => {
        const type = request.headers['content-type'];
        if (typeof type !== 'string' || !IS_JSON.test(type)) {
          throw new AppError(
            'unsupported_media_type',
            'Send the body as JSON with Content-Type: application/json.',
          );
        }
      },
    },
    async (request, reply) => {
      const key = parseIdempotencyKey(request.headers['idempotency-key']);
      let result: CreateOrderResult;
      try {
        result = await deps.orders.create(
          {
            input: request.body,
            idempotency: key
              ? { key, fingerprint: requestFingerprint('POST', '/orders', request.body) }
              : undefined,
            traceContext: currentTraceCarrier(telemetry, request.headers.traceparent),
          },
          { signal: request.cancellation },
        );
      } catch (error) {
        if (error instanceof AppError && error.code === 'idempotency_key_in_use') {
          deps.metrics.idempotency.inc({ outcome: 'conflict' });
        } else if (error instanceof AppError && error.code === 'idempotency_key_reused') {
          deps.metrics.idempotency.inc({ outcome: 'mismatch' });
        }
        throw error;
      }
      if (result.kind === 'created') {
        deps.metrics.ordersCreated.inc();
        if (key) deps.metrics.idempotency.inc({ outcome: 'created' });
      } else {
        deps.metrics.idempotency.inc({ outcome: 'replayed' });
        reply.header('idempotent-replayed', 'true');
      }
      const { statusCode, headers, body } = result.response;
      reply.headers(headers);
      return sendRaw(reply, statusCode, headers['content-type'] ?? JSON_CONTENT_TYPE, body);
    },
  );

  app.get(
    '/orders/:id',
    {
      schema: {
        tags: ['orders'],
        summary: 'Get an order',
        params: OrderIdParams,
        response: {
          200: { description: 'The order', content: { 'application/json': { schema: Order } } },
          ...problemResponses(400, 404, 500, 503, 504),
        },
      },
    },
    async (request, reply) => {
      const order = await deps.orders.get(request.params.id, { signal: request.cancellation });
      return sendRaw(reply, 200, JSON_CONTENT_TYPE, JSON.stringify(order));
    },
  );

  app.get(
    '/orders/:id/events',
    {
      schema: {
        tags: ['orders'],
        summary: "List an order's events and their delivery state",
        params: OrderIdParams,
        response: {
          200: { description: 'The events', content: { 'application/json': { schema: OrderEvents } } },
          ...problemResponses(400, 404, 500, 503, 504),
        },
      },
    },
    async (request, reply) => {
      const events = await deps.orders.listEvents(request.params.id, { signal: request.cancellation });
      return sendRaw(reply, 200, JSON_CONTENT_TYPE, JSON.stringify({ events }));
    },
  );
};
