/**
 * Tracing: the request's server span (parented by the caller's traceparent) is made active for
 * everything the handler awaits, and the request's log lines carry its traceId and spanId. Body
 * parsing runs in the socket's async context, so the span is activated again right before the
 * handler. With tracing off, only the log lines carry the caller's trace id.
 */
import type { Span } from '@opentelemetry/api';
import fp from 'fastify-plugin';
import {
  context,
  extractContext,
  SpanKind,
  SpanStatusCode,
  type Telemetry,
  trace,
  traceIdFromTraceparent,
} from '../../platform/telemetry.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's server span, when tracing is on. */
    span: Span | undefined;
  }
}

export const tracing = fp<{ telemetry: Telemetry }>(
  async (app, { telemetry }) => {
    app.decorateRequest('span', undefined);

    if (!telemetry.enabled) {
      app.addHook('onRequest', (request, _reply, done) => {
        const traceId = traceIdFromTraceparent(request.headers.traceparent);
        if (traceId) request.log = request.log.child({ traceId });
        done();
      });
      return;
    }

    app.addHook('onRequest', (request, _reply, done) => {
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

    app.addHook('onResponse', (request, reply, done) => {
      if (request.span) {
        request.span.setAttribute('http.response.status_code', reply.statusCode);
        if (reply.statusCode >= 500) request.span.setStatus({ code: SpanStatusCode.ERROR });
        request.span.end();
      }
      done();
    });
  },
  // Hooks run in registration order: the deadline (and its timer) exists before the span's
  // context is entered.
  { name: 'tracing', dependencies: ['request-deadline'] },
);
