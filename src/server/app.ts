/**
 * buildApp(deps) → a FastifyInstance that never listens by itself. The process (commands/serve)
 * owns listening and shutdown; tests build the same app and use app.inject.
 */

import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import underPressure from '@fastify/under-pressure';
import type { Span } from '@opentelemetry/api';
import Fastify, { type FastifyInstance, type FastifyServerOptions, LogController } from 'fastify';
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { ZodType } from 'zod';
import type { OrdersService } from '../orders/service.js';
import { AppError } from '../platform/errors.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import { httpStatus } from '../platform/problem.js';
import {
  context,
  disabledTelemetry,
  extractContext,
  SpanKind,
  SpanStatusCode,
  type Telemetry,
  trace,
  traceIdFromTraceparent,
} from '../platform/telemetry.js';
import { addResponseHeaders } from './openapi.js';
import { fromZod, PROBLEM_CONTENT_TYPE, problemBody, sendProblem, toAppError } from './problem.js';
import { healthRoutes } from './routes/health.js';
import { orderRoutes } from './routes/orders.js';

export const BODY_LIMIT = 1024 * 1024;

/** Shared with the process: shutdown flips these, the app reads them. */
export interface Lifecycle {
  /** True from the first shutdown signal on: /readyz answers 503. */
  shuttingDown: boolean;
  /** True once the listener closed: responses carry `Connection: close`. */
  draining: boolean;
}

export interface AppDeps {
  logger: Logger;
  orders: OrdersService;
  metrics: Metrics;
  lifecycle: Lifecycle;
  /** Resolves true when the database answers and the schema is current. */
  readiness: (signal: AbortSignal) => Promise<boolean>;
  requestTimeoutMs: number;
  idempotencyTtlHours: number;
  /** Tracing; off when absent. */
  telemetry?: Telemetry | undefined;
  /** Load shedding thresholds; off in tests unless given. */
  underPressure?: { maxEventLoopDelayMs: number } | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Aborted when the request's deadline passes or the client goes away: hand it to the database. */
    cancellation: AbortSignal;
    /** The request's server span, when tracing is on. */
    span: Span | undefined;
  }
}

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const options: FastifyServerOptions = {
    loggerInstance: deps.logger,
    // One line per request is written in onResponse (with route, status and duration).
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    bodyLimit: BODY_LIMIT,
    genReqId: (req) => {
      const header = req.headers['x-request-id'];
      return typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID();
    },
    return503OnClosing: false,
    // Router-level rejections (bad percent-encoding, over-long path parameters) take the same
    // problem+json path as everything else.
    frameworkErrors: (error, request, reply) => {
      const detail =
        error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'A path parameter is too long.' : 'The URL is malformed.';
      sendProblem(request, reply, new AppError('validation_failed', detail, { cause: error }));
    },
    // Requests Node's HTTP parser rejects (oversized headers, garbage) never reach fastify;
    // answer them in the same problem+json shape instead of Node's bare status line.
    clientErrorHandler: (error, socket) => {
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
    },
    forceCloseConnections: false,
  };
  const app = Fastify(options).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler<ZodType>(({ schema, httpPart }) => (data) => {
    const result = schema.safeParse(data);
    return result.success ? { value: result.data } : { error: fromZod(result.error, httpPart) };
  });
  // Responses are serialised once, in the handlers (strings), or with plain JSON.stringify.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  // JSON only, strictly UTF-8, prototype-poisoning keys rejected (fastify's secure parser).
  const defaultJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const buffer = body as Buffer;
    if (!isUtf8(buffer)) {
      done(
        new AppError('validation_failed', 'The request body is not valid UTF-8.', {
          errors: [{ path: '', message: 'body must be UTF-8 encoded JSON' }],
        }),
        undefined,
      );
      return;
    }
    defaultJson(request, buffer.toString('utf8'), done);
  });

  app.decorateRequest('cancellation', null as unknown as AbortSignal);
  app.decorateRequest('span', undefined);
  const telemetry = deps.telemetry ?? disabledTelemetry();

  // Hooks are callback-style (no promise per hook per request): they run on every request.
  app.addHook('onRequest', (request, reply, done) => {
    const controller = new AbortController();
    request.cancellation = controller.signal;
    const timer = setTimeout(() => {
      controller.abort(
        new AppError('timeout', `The request did not finish within ${deps.requestTimeoutMs} ms.`),
      );
    }, deps.requestTimeoutMs);
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

  // Tracing: the request's server span (parented by the caller's traceparent) is made active for
  // everything the handler awaits. Body parsing runs in the socket's async context, so the span
  // is activated again right before the handler. With tracing off, only the log line carries
  // the caller's trace id.
  app.addHook('onRequest', (request, _reply, done) => {
    if (!telemetry.enabled) {
      const traceId = traceIdFromTraceparent(request.headers.traceparent);
      if (traceId) request.log = request.log.child({ traceId });
      done();
      return;
    }
    const parent = extractContext(request.headers);
    const span = telemetry.tracer.startSpan(
      `${request.method} ${request.routeOptions.url ?? 'unmatched'}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'http.request.method': request.method,
          'url.path': request.url.split('?')[0] ?? request.url,
          'http.route': request.routeOptions.url ?? 'unmatched',
          'http.request.id': request.id,
        },
      },
      parent,
    );
    request.span = span;
    const { traceId, spanId } = span.spanContext();
    request.log = request.log.child({ traceId, spanId });
    context.with(trace.setSpan(parent, span), done);
  });
  app.addHook('preHandler', (request, _reply, done) => {
    if (request.span) context.with(trace.setSpan(context.active(), request.span), done);
    else done();
  });

  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    if (deps.lifecycle.draining) reply.header('connection', 'close');
    done(null, payload);
  });

  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    if (request.span) {
      request.span.setAttribute('http.response.status_code', reply.statusCode);
      if (reply.statusCode >= 500) request.span.setStatus({ code: SpanStatusCode.ERROR });
      request.span.end();
    }
    const seconds = reply.elapsedTime / 1000;
    deps.metrics.httpRequestDuration.observe(
      { method: request.method, route, status_code: String(reply.statusCode) },
      seconds,
    );
    request.log.info(
      {
        method: request.method,
        route,
        url: request.url,
        statusCode: reply.statusCode,
        durationMs: Math.round(reply.elapsedTime * 100) / 100,
      },
      'request completed',
    );
    done();
  });

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

  if (deps.underPressure) {
    await app.register(underPressure, {
      maxEventLoopDelay: deps.underPressure.maxEventLoopDelayMs,
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
  }

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Orders API',
        version: '1.0.0',
        description:
          'Create and read orders. Errors are RFC 9457 problem+json with a stable `code`. ' +
          `Idempotency-Key records are kept for ${deps.idempotencyTtlHours} hours (IDEMPOTENCY_TTL_HOURS).`,
      },
      tags: [
        { name: 'orders', description: 'Orders and their events' },
        { name: 'operations', description: 'Health, readiness and metrics' },
      ],
    },
    transform: jsonSchemaTransform,
    transformObject: (doc) => addResponseHeaders(jsonSchemaTransformObject(doc)),
  });

  await app.register(healthRoutes, deps);
  await app.register(orderRoutes, deps);

  app.get('/openapi.json', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('application/json; charset=utf-8').send(JSON.stringify(app.swagger())),
  );
  const { default: swaggerUi } = await import('@fastify/swagger-ui');
  await app.register(swaggerUi, { routePrefix: '/docs' });

  return app;
}
