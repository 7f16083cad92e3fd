/**
 * POST /orders/{id}/cancel and /ship: a command on an order, one transaction each
 * (orders/transitions.ts). They need no body: none, an empty one (whatever its Content-Type
 * says) or `{}`, so this plugin's own parsers accept an empty body where the app's JSON parser
 * refuses one; anything else is 400 (or 415 for a body that is not JSON).
 */
import { isUtf8 } from 'node:buffer';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { Order, OrderIdParams } from '../../orders/schemas.js';
import { orderETag } from '../../orders/service.js';
import { AppError } from '../../platform/errors.js';
import { JSON_CONTENT_TYPE } from '../../platform/problem.js';
import { currentTraceCarrier, disabledTelemetry } from '../../platform/telemetry.js';
import type { AppDeps } from '../app.js';
import type { Authentication } from '../plugins/authentication.js';
import { sendRaw } from '../problem.js';
import {
  decide,
  INVALID_TRANSITION_DESCRIPTION,
  orderProblems,
  PRECONDITION_FAILED_DESCRIPTION,
  parseIfMatch,
  secured,
} from './order-http.js';

const CommandBody = z.strictObject({}).optional().meta({ description: 'No body, an empty one, or `{}`' });

const CommandHeaders = z.looseObject({
  'if-match': z
    .string()
    .optional()
    .meta({
      description:
        'Apply the command only if the order is still at this version (its ETag, `"<version>"`; `*`: any): ' +
        'otherwise 412, checked before the transition itself (RFC 9110 §13.1.1).',
      example: '"1"',
    }),
});

const COMMANDS = {
  cancel: {
    summary: 'Cancel an order',
    description:
      'A pending or confirmed order becomes cancelled (reason `requested`, OrderCancelled is published). ' +
      'Cancelling a cancelled order changes nothing (200); a shipped one is 409 invalid_transition.',
    operationId: 'cancelOrder',
  },
  ship: {
    summary: 'Ship an order',
    description:
      'A confirmed order becomes shipped (OrderShipped is published). Shipping a shipped order changes ' +
      'nothing (200); any other status is 409 invalid_transition.',
    operationId: 'shipOrder',
  },
} as const;

export const orderCommandRoutes: FastifyPluginAsyncZod<AppDeps & { auth: Authentication }> = async (
  app,
  deps,
) => {
  const telemetry = deps.telemetry ?? disabledTelemetry();
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const buffer = body as Buffer;
    if (buffer.length === 0) {
      done(null, {});
      return;
    }
    if (!isUtf8(buffer)) {
      done(
        new AppError('validation_failed', 'The request body is not valid UTF-8.', {
          errors: [{ path: '', message: 'body must be UTF-8 encoded JSON' }],
        }),
        undefined,
      );
      return;
    }
    json(request, buffer.toString('utf8'), (error, value) => {
      // A JSON null is a body, and not `{}`; fastify also says null for "no body" (see below).
      if (!error && value === null) done(notEmptyObject(), undefined);
      else done(error, value);
    });
  });
  // No body reads as `{}` (fastify validates a missing body as null, which the schema refuses;
  // the parser above never yields null, so here it only ever means none was sent).
  app.addHook('preValidation', (request, _reply, done) => {
    request.body ??= {};
    done();
  });
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => {
    if ((body as Buffer).length === 0) done(null, {});
    else
      done(new AppError('unsupported_media_type', 'Send no body, or `{}` as application/json.'), undefined);
  });

  for (const kind of ['cancel', 'ship'] as const) {
    const { summary, description, operationId } = COMMANDS[kind];
    app.post(
      `/orders/:id/${kind}`,
      {
        schema: {
          tags: ['orders'],
          summary,
          description,
          operationId,
          ...secured(kind),
          params: OrderIdParams,
          headers: CommandHeaders,
          body: CommandBody,
          response: {
            200: {
              description: 'The order as it is after the command',
              content: { 'application/json': { schema: Order } },
            },
            ...orderProblems(
              {
                400: 'validation_failed: a bad id, a body other than none or `{}`, or a malformed If-Match',
                409: INVALID_TRANSITION_DESCRIPTION,
                412: PRECONDITION_FAILED_DESCRIPTION,
                415: 'unsupported_media_type: a body that is not application/json',
              },
              400,
              401,
              403,
              404,
              408,
              409,
              412,
              413,
              415,
              500,
              503,
              504,
            ),
          },
        },
        onRequest: deps.auth.hooks(kind),
      },
      async (request, reply) => {
        const ifMatch = parseIfMatch(request.headers['if-match']);
        const { order, statusChange } = await deps.orders.command(
          {
            kind,
            orderId: request.params.id,
            visibleTo: decide(request, kind),
            ifMatch,
            traceContext: currentTraceCarrier(telemetry, request.headers.traceparent),
          },
          { signal: request.cancellation },
        );
        if (statusChange) deps.metrics.statusTransitions.inc(statusChange);
        reply.header('etag', orderETag(order));
        return sendRaw(reply, 200, JSON_CONTENT_TYPE, JSON.stringify(order));
      },
    );
  }
};

function notEmptyObject(): AppError {
  return new AppError('validation_failed', 'The request body is invalid.', {
    errors: [{ path: '', message: 'send no body, or {}' }],
  });
}
