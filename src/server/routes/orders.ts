import type { onRequestHookHandler } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { idempotencyScope } from '../../auth/policy.js';
import { OrderEvents } from '../../messaging/events.js';
import { parseIdempotencyKey, requestFingerprint } from '../../orders/idempotency.js';
import { Order, OrderIdParams, OrderInput } from '../../orders/schemas.js';
import { type CreateOrderResult, orderETag } from '../../orders/service.js';
import { AppError } from '../../platform/errors.js';
import { JSON_CONTENT_TYPE } from '../../platform/problem.js';
import { currentTraceCarrier, disabledTelemetry } from '../../platform/telemetry.js';
import type { AppDeps } from '../app.js';
import { createAuthentication } from '../plugins/authentication.js';
import { problemResponses, sendRaw } from '../problem.js';
import { orderCommandRoutes } from './order-commands.js';
import { decide, noneMatchHits, secured } from './order-http.js';
import { orderListRoutes } from './order-list.js';

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

const ConditionalGetHeaders = z.looseObject({
  'if-none-match': z
    .string()
    .optional()
    .meta({
      description:
        'The ETag of the copy the caller has (`"<version>"`, or `*`): when it is current the answer is 304 ' +
        'with no body (weak comparison, RFC 9110 §13.1.2).',
    }),
});

/** The body's JSON type is checked before it is parsed: anything else is refused with 415. */
const requireJson: onRequestHookHandler = (request, _reply, done) => {
  const type = request.headers['content-type'];
  if (typeof type !== 'string' || !IS_JSON.test(type)) {
    done(
      new AppError('unsupported_media_type', 'Send the body as JSON with Content-Type: application/json.'),
    );
    return;
  }
  done();
};

export const orderRoutes: FastifyPluginAsyncZod<AppDeps> = async (app, deps) => {
  const telemetry = deps.telemetry ?? disabledTelemetry();
  const auth = deps.auth ?? createAuthentication({ verifier: undefined, metrics: deps.metrics });

  app.post(
    '/orders',
    {
      schema: {
        tags: ['orders'],
        summary: 'Create an order',
        operationId: 'createOrder',
        ...secured('create'),
        headers: IdempotencyHeaders,
        body: OrderInput,
        response: {
          201: { description: 'Created (or replayed)', content: { 'application/json': { schema: Order } } },
          ...problemResponses(400, 401, 403, 408, 409, 413, 415, 422, 500, 503, 504),
        },
      },
      // Both before the body is read: who is asking, then whether the body is declared as JSON.
      onRequest: [...auth.hooks('create'), requireJson],
    },
    async (request, reply) => {
      const { customerId } = decide(request, 'create', request.body.customerId);
      if (customerId === null) {
        throw new AppError('validation_failed', 'The request body is invalid.', {
          errors: [{ path: '/customerId', message: 'is required (name the customer the order is for)' }],
        });
      }
      const key = parseIdempotencyKey(request.headers['idempotency-key']);
      let result: CreateOrderResult;
      try {
        result = await deps.orders.create(
          {
            input: request.body,
            customerId,
            idempotency: key
              ? {
                  key,
                  fingerprint: requestFingerprint('POST', '/orders', request.body),
                  scope: idempotencyScope(request.principal),
                }
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
        operationId: 'getOrder',
        ...secured('read'),
        params: OrderIdParams,
        headers: ConditionalGetHeaders,
        response: {
          200: { description: 'The order', content: { 'application/json': { schema: Order } } },
          304: z.null().meta({ description: 'Not Modified: If-None-Match names the current ETag (no body)' }),
          ...problemResponses(400, 401, 403, 404, 500, 503, 504),
        },
      },
      onRequest: auth.hooks('read'),
    },
    async (request, reply) => {
      const order = await deps.orders.getRepresentation(request.params.id, decide(request, 'read'), {
        signal: request.cancellation,
      });
      const etag = orderETag(order);
      reply.header('etag', etag);
      if (noneMatchHits(request.headers['if-none-match'], etag)) return reply.code(304).send(null);
      return sendRaw(reply, 200, JSON_CONTENT_TYPE, order.body);
    },
  );

  app.get(
    '/orders/:id/events',
    {
      schema: {
        tags: ['orders'],
        summary: "List an order's events and their delivery state",
        operationId: 'listOrderEvents',
        ...secured('read'),
        params: OrderIdParams,
        response: {
          200: { description: 'The events', content: { 'application/json': { schema: OrderEvents } } },
          ...problemResponses(400, 401, 403, 404, 500, 503, 504),
        },
      },
      onRequest: auth.hooks('read'),
    },
    async (request, reply) => {
      const events = await deps.orders.listEvents(request.params.id, decide(request, 'read'), {
        signal: request.cancellation,
      });
      return sendRaw(reply, 200, JSON_CONTENT_TYPE, JSON.stringify({ events }));
    },
  );

  await app.register(orderListRoutes, { ...deps, auth });
  await app.register(orderCommandRoutes, { ...deps, auth });
};
