/**
 * Pieces of the OpenAPI document that the route schemas cannot express on their own:
 * the problem+json responses and the response headers (Location, Retry-After, ...).
 */
import { z } from 'zod';
import { ERROR_CODES } from '../platform/errors.js';

export const ProblemSchema = z
  .object({
    type: z
      .string()
      .meta({ description: 'URI reference naming the problem type', example: '/problems/not_found' }),
    title: z.string(),
    status: z.int(),
    detail: z.string(),
    code: z.enum(ERROR_CODES),
    instance: z.string().meta({ description: 'The request path' }),
    errors: z
      .array(
        z.object({
          path: z
            .string()
            .meta({ description: 'JSON Pointer into the request body', example: '/items/0/quantity' }),
          message: z.string(),
        }),
      )
      .optional()
      .meta({ description: 'Each validation failure (validation_failed only)' }),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details' });

const DESCRIPTIONS: Record<number, string> = {
  400: 'validation_failed: malformed JSON, schema violation, bad id or bad Idempotency-Key',
  404: 'not_found: unknown order or route',
  409: 'idempotency_key_in_use: a request with the same key is still in flight (see Retry-After)',
  413: 'payload_too_large: body over 1 MiB',
  415: 'unsupported_media_type: body not declared as application/json',
  422: 'idempotency_key_reused: the key was used with a different request',
  500: 'internal: unexpected failure (no internals are disclosed)',
  503: 'unavailable: database unreachable, server overloaded or shutting down (see Retry-After)',
  504: 'timeout: the request deadline (REQUEST_TIMEOUT_MS) passed',
};

/** Response entries for the given error statuses, all `application/problem+json`. */
export function problemResponses(...statuses: number[]) {
  return Object.fromEntries(
    statuses.map((status) => [
      status,
      {
        description: DESCRIPTIONS[status] ?? 'error',
        content: { 'application/problem+json': { schema: ProblemSchema } },
      },
    ]),
  );
}

type Doc = {
  paths?: Record<string, Record<string, { responses?: Record<string, Record<string, unknown>> }>>;
};

const header = (description: string, schema: Record<string, unknown> = { type: 'string' }) => ({
  description,
  schema,
});

/** Adds the response headers every answer (or a given status) carries. */
export function addResponseHeaders<T>(document: T): T {
  const doc = document as Doc;
  for (const [path, methods] of Object.entries(doc.paths ?? {})) {
    for (const [method, operation] of Object.entries(methods)) {
      for (const [status, response] of Object.entries(operation.responses ?? {})) {
        const headers: Record<string, unknown> = {
          'X-Request-Id': header(
            "The caller's X-Request-Id when it is 1–128 visible ASCII characters, else a new one",
          ),
        };
        if (status === '409' || status === '503') {
          headers['Retry-After'] = header('Seconds to wait before retrying', { type: 'integer', minimum: 0 });
        }
        if (path === '/orders' && method === 'post' && status === '201') {
          headers.Location = header('Path of the created order: /orders/{id}');
          headers['Idempotent-Replayed'] = header(
            'Present with the value "true" when this response is a replay of an earlier request with the same Idempotency-Key',
            { type: 'string', enum: ['true'] },
          );
        }
        response.headers = { ...(response.headers as object | undefined), ...headers };
      }
    }
  }
  return document;
}
