/**
 * GET /orders: a page of orders, newest first, with an opaque keyset cursor (orders/listing.ts)
 * and `Link: <…>; rel="next"` (RFC 8288) carrying the caller's other parameters along.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ORDER_STATUSES } from '../../orders/lifecycle.js';
import { decodeCursor, encodeCursor, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX } from '../../orders/listing.js';
import { Order, safeText } from '../../orders/schemas.js';
import { AppError } from '../../platform/errors.js';
import { JSON_CONTENT_TYPE } from '../../platform/problem.js';
import type { AppDeps } from '../app.js';
import type { Authentication } from '../plugins/authentication.js';
import { sendRaw } from '../problem.js';
import { decide, orderProblems, secured } from './order-http.js';

const ListQuery = z.object({
  customerId: safeText(64)
    .optional()
    .meta({
      description:
        "Only this customer's orders. A customer's token lists its own (the default; another value is 403); " +
        'with orders:admin, every customer when left out.',
      example: 'c-42',
    }),
  status: z.enum(ORDER_STATUSES).optional().meta({ description: 'Only orders in this status' }),
  limit: z
    .string()
    .regex(/^(?:[1-9]\d?|100)$/, `must be an integer from 1 to ${LIST_LIMIT_MAX}`)
    .optional()
    .meta({
      description: `Orders per page, 1–${LIST_LIMIT_MAX} (default ${LIST_LIMIT_DEFAULT})`,
      example: '20',
    }),
  cursor: z
    .string()
    .max(200)
    .optional()
    .meta({ description: "Where the page starts: the previous page's nextCursor (opaque)" }),
});

const OrderPage = z
  .object({
    orders: z.array(Order),
    nextCursor: z
      .string()
      .nullable()
      .meta({ description: 'The cursor of the next page; null on the last page' }),
  })
  .meta({ id: 'OrderPage' });

export const orderListRoutes: FastifyPluginAsyncZod<AppDeps & { auth: Authentication }> = async (
  app,
  deps,
) => {
  app.get(
    '/orders',
    {
      schema: {
        tags: ['orders'],
        summary: 'List orders, newest first (keyset pagination)',
        description:
          'Newest first by createdAt, then id. Follow nextCursor (or the Link header) for the next page: ' +
          'paging through never repeats or skips an order that existed when the first page was read.',
        operationId: 'listOrders',
        ...secured('list'),
        querystring: ListQuery,
        response: {
          200: { description: 'A page of orders', content: { 'application/json': { schema: OrderPage } } },
          ...orderProblems(
            {
              400: 'validation_failed: a malformed customerId, status, limit or cursor',
              403: "forbidden: the token lacks the operation's scope (see WWW-Authenticate), or names another customer",
            },
            400,
            401,
            403,
            500,
            503,
            504,
          ),
        },
      },
      // The query's problems are reported as such (the shared validator speaks of the body).
      attachValidation: true,
      onRequest: deps.auth.hooks('list'),
    },
    async (request, reply) => {
      if (request.validationError) throw queryError(request.validationError);
      const query = request.query;
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
      if (query.cursor !== undefined && !after) {
        throw new AppError('validation_failed', 'The cursor is not one this service gave out.', {
          errors: [{ path: '/cursor', message: "must be a previous page's nextCursor" }],
        });
      }
      const { customerId } = decide(request, 'list', query.customerId);
      const limit = query.limit === undefined ? LIST_LIMIT_DEFAULT : Number(query.limit);
      const page = await deps.orders.list(
        { customerId, status: query.status, limit, after },
        { signal: request.cancellation },
      );
      const nextCursor = page.next ? encodeCursor(page.next) : null;
      if (nextCursor) reply.header('link', `<${nextLink(query, nextCursor)}>; rel="next"`);
      return sendRaw(reply, 200, JSON_CONTENT_TYPE, JSON.stringify({ orders: page.orders, nextCursor }));
    },
  );
};

/** The next page's URL: the caller's parameters as given, the cursor replaced. */
function nextLink(query: z.infer<typeof ListQuery>, cursor: string): string {
  const params = new URLSearchParams();
  if (query.customerId !== undefined) params.set('customerId', query.customerId);
  if (query.status !== undefined) params.set('status', query.status);
  if (query.limit !== undefined) params.set('limit', query.limit);
  params.set('cursor', cursor);
  return `/orders?${params.toString()}`;
}

function queryError(error: Error): AppError {
  const fields = error instanceof AppError ? error.errors : undefined;
  return new AppError('validation_failed', 'The query string is invalid.', {
    errors: fields ?? [{ path: '', message: error.message.slice(0, 200) }],
  });
}
