/**
 * RFC 9457 problem details over HTTP: turns anything thrown in a request into an AppError, sends
 * it as problem+json, and describes those answers in the OpenAPI document. 5xx bodies never
 * carry internals (no stack, no SQL, no driver message).
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ZodError, z } from 'zod';
import { AppError, ERROR_CODES, type ErrorCode, type FieldError, isRetryable } from '../platform/errors.js';
import { httpStatus, PROBLEM_CONTENT_TYPE, problemBody } from '../platform/problem.js';

/** A JSON Pointer (RFC 6901) from a zod issue path. */
function jsonPointer(path: readonly PropertyKey[]): string {
  return path.map((p) => `/${String(p).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

/**
 * The most field errors a problem lists; `errorCount` gives the total when there are more. Listing
 * every one lets a 1 MiB body buy a 4 MB answer and a few hundred ms of event loop.
 */
export const MAX_FIELD_ERRORS = 50;

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'validation_failed',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'validation_failed',
  FST_ERR_CTP_INVALID_JSON_BODY: 'validation_failed',
  FST_ERR_VALIDATION: 'validation_failed',
};

/** Maps anything thrown in a request to an AppError, keeping the original as `cause`. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof ZodError) return fromZod(error, undefined);
  const fe = error as Partial<FastifyError> & { validationContext?: string };
  if (fe && typeof fe === 'object') {
    if (fe.validation && fe.validationContext) {
      const errors = fe.validation.slice(0, MAX_FIELD_ERRORS).map((v) => ({
        path: v.instancePath ?? '',
        message: v.message ?? 'is invalid',
      }));
      return new AppError(
        'validation_failed',
        'The request is invalid.',
        listed(errors, fe.validation.length),
      );
    }
    const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined;
    if (mapped) return new AppError(mapped, fastifyDetail(mapped, fe), { cause: error });
    // The JSON parser's syntax errors and prototype-poisoning rejections carry a 400 status.
    if (fe.statusCode === 400 || error instanceof SyntaxError) {
      return new AppError('validation_failed', 'The request body is not valid JSON.', {
        errors: [{ path: '', message: safeMessage(fe.message) }],
        cause: error,
      });
    }
    if (fe.statusCode === 413)
      return new AppError('payload_too_large', fastifyDetail('payload_too_large', fe));
    if (fe.statusCode === 415)
      return new AppError('unsupported_media_type', fastifyDetail('unsupported_media_type', fe));
  }
  // A broken connection, or a transaction that lost a race and may simply be sent again.
  if (isRetryable(error)) {
    return new AppError('unavailable', 'The database is unavailable. Retry shortly.', {
      retryAfterSeconds: 2,
      cause: error,
    });
  }
  return new AppError('internal', 'An unexpected error occurred.', { cause: error });
}

export function fromZod(error: ZodError, context: string | undefined): AppError {
  const where = context && context !== 'body' ? `${context}: ` : '';
  const errors: FieldError[] = [];
  let total = 0;
  for (const issue of error.issues) {
    // One issue names every unknown key of an object, however many (a 1 MiB body holds 90,000).
    const keys = issue.code === 'unrecognized_keys' ? issue.keys : [undefined];
    for (const key of keys.slice(0, MAX_FIELD_ERRORS - errors.length)) {
      errors.push(
        key === undefined
          ? { path: jsonPointer(issue.path), message: `${where}${issue.message}` }
          : { path: jsonPointer([...issue.path, key]), message: `${where}unknown field` },
      );
    }
    total += keys.length;
  }
  return new AppError(
    'validation_failed',
    context === 'params' ? 'The URL is invalid.' : 'The request body is invalid.',
    listed(errors, total),
  );
}

/** The AppError options for the first `errors` of `total`: `errorCount` only when some were left out. */
function listed(errors: FieldError[], total: number): { errors: FieldError[]; errorCount?: number } {
  return total > errors.length ? { errors, errorCount: total } : { errors };
}

function fastifyDetail(code: ErrorCode, error: Partial<FastifyError>): string {
  switch (code) {
    case 'payload_too_large':
      return 'The request body exceeds the 1 MiB limit.';
    case 'unsupported_media_type':
      return 'Send the body as JSON with Content-Type: application/json.';
    default:
      return safeMessage(error.message);
  }
}

/** Parser messages are safe to echo (they describe the caller's input), but keep them short. */
function safeMessage(message: string | undefined): string {
  return (message ?? 'invalid request').slice(0, 200);
}

/** Sends an already-serialised body (the handlers build JSON once, as strings). */
export function sendRaw(reply: FastifyReply, status: number, contentType: string, body: string) {
  return reply.code(status).type(contentType).send(body);
}

export function sendProblem(request: FastifyRequest, reply: FastifyReply, error: AppError) {
  if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
  return reply
    .code(httpStatus(error.code))
    .type(PROBLEM_CONTENT_TYPE)
    .send(JSON.stringify(problemBody(error, request.url.split('?')[0] ?? request.url)));
}

/** The problem+json body, as the OpenAPI document describes it. */
const ProblemSchema = z
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
      .max(MAX_FIELD_ERRORS)
      .optional()
      .meta({ description: `The validation failures (validation_failed only), at most ${MAX_FIELD_ERRORS}` }),
    errorCount: z
      .int()
      .optional()
      .meta({ description: `How many validation failures there were, when more than ${MAX_FIELD_ERRORS}` }),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details' });

const DESCRIPTIONS: Record<number, string> = {
  400: 'validation_failed: malformed JSON, schema violation, bad id or bad Idempotency-Key',
  401: 'unauthenticated: no bearer token, or one that fails verification (see WWW-Authenticate)',
  403: "forbidden: the token lacks the operation's scope (see WWW-Authenticate), or names another customer",
  404: "not_found: unknown order (or another customer's: existence is not revealed) or route",
  408: 'request_timeout: the request was still arriving when REQUEST_TIMEOUT_MS passed (the connection is closed)',
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
